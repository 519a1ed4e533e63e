defmodule XmppTestServer.TLS do
  @moduledoc false
  # A CA and a CA-signed server certificate generated with openssl for one
  # test server run (EC P-256 keys: the whole set takes ~30 ms).

  alias XmppTestServer.OS

  @days "30"

  @doc """
  Writes into `dir`:

    * `ca.pem` / `ca.key` - a self-signed CA (basicConstraints CA:TRUE)
    * `server.crt` / `server.key` - a server certificate signed by it, with
      subjectAltName DNS entries for every name in `names` and IP 127.0.0.1
    * `server.pem` - certificate followed by key (ejabberd's `certfiles` format)

  and returns their paths. `label` goes into the CA's common name.
  """
  def generate(dir, [first | _] = names, label) do
    File.mkdir_p!(dir)
    p = &Path.join(dir, &1)

    san = Enum.map_join(names, ",", &"DNS:#{&1}") <> ",IP:127.0.0.1"

    File.write!(p.("server.ext"), """
    subjectAltName=#{san}
    basicConstraints=critical,CA:FALSE
    keyUsage=critical,digitalSignature,keyEncipherment
    extendedKeyUsage=serverAuth,clientAuth
    """)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    steps = [
      ["req", "-x509"] ++
        ec ++
        ["-keyout", p.("ca.key"), "-out", p.("ca.pem"), "-days", @days] ++
        ["-subj", "/O=xmpp_test_server/CN=xmpp_test_server CA #{label}"] ++
        ["-addext", "basicConstraints=critical,CA:TRUE"] ++
        ["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
      ["req"] ++
        ec ++
        ["-keyout", p.("server.key"), "-out", p.("server.csr"), "-subj", "/CN=#{first}"],
      ["x509", "-req", "-in", p.("server.csr"), "-CA", p.("ca.pem"), "-CAkey", p.("ca.key")] ++
        ["-CAcreateserial", "-out", p.("server.crt"), "-days", @days] ++
        ["-extfile", p.("server.ext")]
    ]

    result =
      Enum.reduce_while(steps, :ok, fn args, :ok ->
        case OS.run("openssl", args, timeout: 20_000) do
          {:ok, _} -> {:cont, :ok}
          {:error, {:missing_executable, _} = e} -> {:halt, {:error, e}}
          {:error, e} -> {:halt, {:error, {:openssl_failed, hd(args), e}}}
        end
      end)

    with :ok <- result do
      File.write!(p.("server.pem"), [File.read!(p.("server.crt")), File.read!(p.("server.key"))])
      File.chmod!(p.("ca.pem"), 0o644)

      {:ok,
       %{
         ca_file: p.("ca.pem"),
         ca_key_file: p.("ca.key"),
         cert_file: p.("server.crt"),
         key_file: p.("server.key"),
         pem_file: p.("server.pem")
       }}
    end
  end
end
