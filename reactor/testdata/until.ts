/**
 * The tests' one way to wait for a condition: poll it every 10 ms (it may be async), and fail naming what was awaited
 * once `timeoutMs` has passed. Plain TypeScript, so the end-to-end scenarios on Node and Bun use it too.
 */
export async function until(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "a condition",
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
