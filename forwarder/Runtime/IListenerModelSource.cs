namespace Forwarder.Runtime;

/// <summary>Where a connection reads the listener model it serves with, afresh per request so reloads apply.</summary>
internal interface IListenerModelSource
{
    ListenerModel Model { get; }
}
