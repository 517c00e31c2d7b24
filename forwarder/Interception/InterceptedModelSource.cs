using System.Net;
using Forwarder.Runtime;

namespace Forwarder.Interception;

/// <summary>
/// The model an intercepted http connection reads per request: what its VIP maps to in the
/// intercept listener's current table, so a reload's routes apply to open connections. A VIP
/// gone from the table ends the connection after the request in flight.
/// </summary>
internal sealed class InterceptedModelSource(IListenerModelSource listener, IPEndPoint vip, ListenerModel initial) : IListenerModelSource
{
    private readonly ListenerModel _closed = initial with { Http = null };

    public ListenerModel Model => listener.Model.Intercept?.Find(vip) ?? _closed;
}
