/** Test helper: a fresh self-signed certificate for 127.0.0.1 and localhost, made with openssl. */
export async function selfSignedCertificate(): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "tls-" });
  try {
    const result = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        // An end-entity certificate: rustls refuses a CA certificate used as the server's own.
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!result.success) throw new Error(`openssl failed: ${new TextDecoder().decode(result.stderr)}`);
    return { cert: await Deno.readTextFile(`${dir}/cert.pem`), key: await Deno.readTextFile(`${dir}/key.pem`) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
