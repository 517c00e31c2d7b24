using System.Buffers;
using System.Net;
using Forwarder.Transports.Tcp;
using Forwarder.Transports.Tcp.Splicing;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Runtime;

/// <summary>
/// Moves the connections of http listeners, accepted and dialled alike, onto the epoll engine's
/// threads when it runs (tcp.engine: epoll on Linux): there each read wakes the HTTP session
/// inline with no probing receive and no thread hop. Otherwise they stay on .NET's socket engine.
/// </summary>
internal sealed class HttpConnectionEngine(SocketSplicer? splicer, MemoryPool<byte> pool, TcpTransportOptions options)
{
    public ValueTask<ConnectionContext> AdoptAsync(ConnectionContext connection)
        => splicer is null ? ValueTask.FromResult(connection) : EpollConnection.AdoptAsync(connection, splicer, pool, options.MaxBufferedBytes);

    /// <summary>A dialer whose connections are adopted as they are made.</summary>
    public IConnectionFactory Dialer(IConnectionFactory inner) => splicer is null ? inner : new AdoptingDialer(inner, this);

    private sealed class AdoptingDialer(IConnectionFactory inner, HttpConnectionEngine engine) : IConnectionFactory
    {
        public async ValueTask<ConnectionContext> ConnectAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
            => await engine.AdoptAsync(await inner.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);
    }
}
