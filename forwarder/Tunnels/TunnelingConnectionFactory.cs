using System.Net;
using Forwarder.Configuration;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Tunnels;

/// <summary>The dialer upstreams use: endpoints on other nodes go through <see cref="NodeLinks"/>, the rest over TCP.</summary>
internal sealed class TunnelingConnectionFactory(IConnectionFactory tcp, NodeLinks links) : IConnectionFactory
{
    public ValueTask<ConnectionContext> ConnectAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
        => endpoint is NodeEndPoint remote ? links.ConnectAsync(remote, cancellationToken) : tcp.ConnectAsync(endpoint, cancellationToken);
}
