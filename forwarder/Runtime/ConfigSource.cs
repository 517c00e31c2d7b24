using Forwarder.Configuration;

namespace Forwarder.Runtime;

/// <summary>Where the config came from: a file (watched and reloadable) or the embedded quick start.</summary>
internal sealed record ConfigSource(string? Path, ForwarderConfig Initial);
