/**
 * Timestamp and Duration as `json_mapping.ts` writes and reads them: RFC 3339 UTC text and seconds with 0, 3, 6 or
 * 9 fraction digits, their ranges, and the calendar arithmetic between them. Text and numbers only; what a value
 * out of range means (a write that fails `INTERNAL`, a read that fails `INVALID_ARGUMENT`) is the caller's.
 *
 * @module
 */

// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the Timestamp range.
export const TIMESTAMP_MIN_SECONDS = -62135596800;
export const TIMESTAMP_MAX_SECONDS = 253402300799;
// About 10,000 years, the Duration range.
export const DURATION_MAX_SECONDS = 315576000000;
export const NANOS_MAX = 999_999_999;

const TIMESTAMP_TEXT =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})$/;
const DURATION_TEXT = /^(-)?([0-9]+)(?:\.([0-9]{1,9}))?s$/;

/** A Timestamp within the range as RFC 3339 text in UTC: `1972-01-01T10:00:20.021Z`. */
export function timestampText(seconds: number, nanos: number): string {
  const days = Math.floor(seconds / 86400);
  const secondOfDay = seconds - days * 86400;
  const [year, month, day] = civilFromDays(days);
  const hour = Math.floor(secondOfDay / 3600);
  const minute = Math.floor((secondOfDay % 3600) / 60);
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:${pad(minute, 2)}:` +
    `${pad(secondOfDay % 60, 2)}${nanosText(nanos)}Z`;
}

/** A Duration within the range (seconds and nanos of one sign) as JSON text: `-1.500s`. */
export function durationText(seconds: number, nanos: number): string {
  const sign = seconds < 0 || nanos < 0 ? "-" : "";
  return `${sign}${Math.abs(seconds)}${nanosText(Math.abs(nanos))}s`;
}

/**
 * The seconds and nanos of RFC 3339 text (any offset, 1 to 9 fraction digits) from year 0001 to 9999; undefined if
 * `json` is not such text.
 */
export function timestampOfText(json: unknown): [number, number] | undefined {
  const match = typeof json === "string" ? TIMESTAMP_TEXT.exec(json) : null;
  if (match === null) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (
    year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 ||
    minute > 59 || second > 59
  ) {
    return undefined;
  }
  let offset = 0;
  const zone = match[8]!;
  if (zone !== "Z") {
    const zoneHours = Number(zone.slice(1, 3));
    const zoneMinutes = Number(zone.slice(4, 6));
    if (zoneHours > 23 || zoneMinutes > 59) return undefined;
    offset = (zone.startsWith("-") ? -1 : 1) * (zoneHours * 3600 + zoneMinutes * 60);
  }
  const seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
  if (seconds < TIMESTAMP_MIN_SECONDS || seconds > TIMESTAMP_MAX_SECONDS) return undefined;
  return [seconds, Number((match[7] ?? "").padEnd(9, "0"))];
}

/** The seconds and nanos (of one sign) of Duration text such as `-1.5s` within the range; undefined if not. */
export function durationOfText(json: unknown): [number, number] | undefined {
  const match = typeof json === "string" ? DURATION_TEXT.exec(json) : null;
  if (match === null || match[2]!.length > 12) return undefined;
  const sign = match[1] === undefined ? 1 : -1;
  const seconds = Number(match[2]);
  const nanos = Number((match[3] ?? "").padEnd(9, "0"));
  if (seconds > DURATION_MAX_SECONDS) return undefined;
  return [seconds === 0 ? 0 : sign * seconds, nanos === 0 ? 0 : sign * nanos];
}

// ---------------------------------------------------------------------------------------------------------------
// Timestamps: days since 1970-01-01 to and from proleptic Gregorian dates (the classic era-based algorithm).

function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const shifted = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * shifted + 2) / 5) + 1;
  const month = shifted < 10 ? shifted + 3 : shifted - 9;
  return [yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

/** 0, 3, 6 or 9 fraction digits, as few as the nanoseconds need, with the point. */
function nanosText(nanos: number): string {
  if (nanos === 0) return "";
  if (nanos % 1_000_000 === 0) return `.${pad(nanos / 1_000_000, 3)}`;
  if (nanos % 1_000 === 0) return `.${pad(nanos / 1_000, 6)}`;
  return `.${pad(nanos, 9)}`;
}
