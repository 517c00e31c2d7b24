using System.Diagnostics;

namespace Forwarder.Tests.Infrastructure;

/// <summary>
/// Idle connections through a proxy, with both ends out of the test process (a python3 peer), so
/// what the process holds meanwhile is the proxy's alone. The peer is a backend that accepts and
/// holds, and a client that opens connections to the proxy and sends nothing.
/// </summary>
internal sealed class IdleConnectionPeers : IAsyncDisposable
{
    private const string Script = """
        import selectors, socket, sys
        lsock = socket.socket(); lsock.bind(("127.0.0.1", 0)); lsock.listen(4096); lsock.setblocking(False)
        print(lsock.getsockname()[1], flush=True)
        sel = selectors.DefaultSelector(); sel.register(lsock, selectors.EVENT_READ)
        sel.register(sys.stdin, selectors.EVENT_READ)
        held = 0; clients = []; want = None
        def accept_all():
            global held
            while True:
                try: conn, _ = lsock.accept()
                except BlockingIOError: return
                conn.setblocking(False); sel.register(conn, selectors.EVENT_READ); held += 1
        while True:
            for key, _ in sel.select(0.05):
                if key.fileobj is lsock:
                    accept_all()
                elif key.fileobj is sys.stdin:
                    words = sys.stdin.readline().split()
                    if not words: sys.exit(0)
                    if words[0] == "open":
                        want = held + int(words[1])
                        for i in range(int(words[1])):
                            c = socket.socket(); c.connect(("127.0.0.1", int(words[2]))); clients.append(c)
                            if i % 100 == 99: accept_all()
                    else:
                        for c in clients: c.close()
                        clients = []; want = 0
                else:
                    try: data = key.fileobj.recv(65536)
                    except OSError: data = b""
                    if not data:
                        sel.unregister(key.fileobj); key.fileobj.close(); held -= 1
            if want is not None and held == want:
                print("held", held, flush=True); want = None
        """;

    private readonly Process _process;

    private IdleConnectionPeers(Process process, int backendPort)
    {
        _process = process;
        BackendPort = backendPort;
    }

    public int BackendPort { get; }

    public static async Task<IdleConnectionPeers> StartAsync()
    {
        var process = Process.Start(new ProcessStartInfo("/usr/bin/python3", ["-c", Script])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("python3 did not start");
        var port = await process.StandardOutput.ReadLineAsync().WaitAsync(Eventually.DefaultTimeout);
        return new IdleConnectionPeers(process, int.Parse(port!, System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Opens <paramref name="count"/> connections to the proxy; returns once the backend holds them all.</summary>
    public Task OpenAsync(int count, int proxyPort) => CommandAsync($"open {count} {proxyPort}");

    /// <summary>Closes every client connection; returns once the backend has seen all of them close.</summary>
    public Task CloseAllAsync() => CommandAsync("close");

    public async ValueTask DisposeAsync()
    {
        // Closing its stdin ends the peer, and with it every socket it holds.
        _process.StandardInput.Close();
        try
        {
            await _process.WaitForExitAsync().WaitAsync(Eventually.DefaultTimeout);
        }
        catch (TimeoutException)
        {
            _process.Kill();
        }

        _process.Dispose();
    }

    private async Task CommandAsync(string command)
    {
        await _process.StandardInput.WriteLineAsync(command);
        await _process.StandardInput.FlushAsync();
        var line = await _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(120));
        Assert.StartsWith("held", line);
    }
}
