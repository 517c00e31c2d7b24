namespace Forwarder.Runtime;

/// <summary>A listener of a new config could not be bound, so the config was not applied.</summary>
internal sealed class ListenerBindException(string message, Exception inner) : Exception(message, inner);
