using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.L7;

/// <summary>
/// An HTTP/1.1 upstream that answers the first request on each connection, then resets the
/// connection when it is reused: every pooled connection turns out stale, as if the upstream's
/// keep-alive timeout raced the reuse. Counts the request heads a test cares about, answered or not.
/// </summary>
internal sealed class StaleOnReuseUpstream : IAsyncDisposable
{
    private readonly TcpTestServer _server;
    private int _counted;

    /// <param name="counts">Which request heads <see cref="Counted"/> counts.</param>
    public StaleOnReuseUpstream(Func<string, bool> counts)
    {
        _server = new TcpTestServer(socket => ServeAsync(socket, counts));
    }

    public string Address => _server.Address;

    /// <summary>How many request heads matching the test's predicate reached the upstream.</summary>
    public int Counted => Volatile.Read(ref _counted);

    public ValueTask DisposeAsync() => _server.DisposeAsync();

    private async Task ServeAsync(Socket socket, Func<string, bool> counts)
    {
        var reader = new SocketReader(socket);
        for (var served = 0; await reader.ReadHeadAsync() is { } head; served++)
        {
            if (counts(head))
            {
                Interlocked.Increment(ref _counted);
            }

            if (served > 0)
            {
                socket.LingerState = new LingerOption(true, 0);
                socket.Close();
                return;
            }

            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(200, "ok"));
        }
    }
}
