using System.Net;
using System.Net.Sockets;

namespace Forwarder.Tests.Infrastructure;

/// <summary>
/// A loopback listener whose backlog is full and never accepted: it drops SYNs, so connects to it
/// hang (until the dialer's connect timeout).
/// </summary>
internal sealed class SilentEndpoint : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly List<Socket> _fillers = [];

    public SilentEndpoint()
    {
        try
        {
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(0);
            for (var i = 0; i < 4; i++)
            {
                var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { Blocking = false };
                _fillers.Add(filler);
                try
                {
                    filler.Connect(_listener.LocalEndPoint!);
                }
                catch (SocketException)
                {
                    // In progress: a filler only needs to occupy the backlog.
                }
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

    /// <summary>host:port, as an endpoint address in a config.</summary>
    public string Address => $"127.0.0.1:{Port}";

    public void Dispose()
    {
        _fillers.ForEach(f => f.Dispose());
        _listener.Dispose();
    }
}
