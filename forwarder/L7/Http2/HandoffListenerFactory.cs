using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Http2;

/// <summary>
/// The transport Kestrel's HTTP/2 server runs on: it binds nothing. Connections an http listener
/// accepted, and found to speak HTTP/2, are handed in with <see cref="HandOff"/> and come out of
/// the listener's accept loop, with whatever bytes were already read still in their input.
/// </summary>
internal sealed class HandoffListenerFactory : IConnectionListenerFactory
{
    private readonly Channel<ConnectionContext> _handedOff = Channel.CreateUnbounded<ConnectionContext>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>Queues a connection for Kestrel; false once the server stopped accepting.</summary>
    public bool HandOff(ConnectionContext connection) => _handedOff.Writer.TryWrite(connection);

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
        => ValueTask.FromResult<IConnectionListener>(new Listener(endpoint, _handedOff));

    private sealed class Listener(EndPoint endpoint, Channel<ConnectionContext> handedOff) : IConnectionListener
    {
        public EndPoint EndPoint => endpoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                return await handedOff.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ChannelClosedException or OperationCanceledException)
            {
                return null;
            }
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            handedOff.Writer.TryComplete();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            handedOff.Writer.TryComplete();
            return ValueTask.CompletedTask;
        }
    }
}
