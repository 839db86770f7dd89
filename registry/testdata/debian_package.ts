/** Test setup helper: a Debian package the tests need, installed when missing and running as root. */

/** Make sure `file` exists, installing `pkg` with apt-get if not (root only; otherwise a clear error). */
export async function ensureDebianPackage(pkg: string, file: string): Promise<void> {
  try {
    await Deno.stat(file);
    return;
  } catch {
    // install below
  }
  if (Deno.uid() !== 0) throw new Error(`${file} is missing and this is not root: apt-get install ${pkg}`);
  for (const args of [["update", "-q"], ["install", "-y", "-q", pkg]]) {
    const result = await new Deno.Command("apt-get", { args, env: { DEBIAN_FRONTEND: "noninteractive" } }).output();
    if (!result.success) {
      throw new Error(`apt-get ${args.join(" ")} failed: ${new TextDecoder().decode(result.stderr)}`);
    }
  }
}
