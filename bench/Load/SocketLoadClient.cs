using System.Net;
using System.Net.Sockets;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Load;

/// <summary>What every load client over one kept-open socket shares: the socket, its abort on timeout, and its close.</summary>
internal abstract class SocketLoadClient(EndPoint endpoint, SocketType type = SocketType.Stream) : ILoadClient
{
    protected LoadSocket Connection { get; } = new(endpoint, type);

    public abstract ValueTask<Response> ExchangeAsync();

    public void Abort() => Connection.Abort();

    public ValueTask DisposeAsync()
    {
        Connection.Close();
        return ValueTask.CompletedTask;
    }
}
