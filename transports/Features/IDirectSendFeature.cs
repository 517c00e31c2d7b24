using System.Buffers;

namespace Forwarder.Transports.Features;

/// <summary>
/// Sends bytes straight to the connection's socket, skipping the output pipe and its copy.
/// Callers must not also write to <c>Transport.Output</c> while using it; completing the output
/// afterwards still half-closes the connection.
/// </summary>
public interface IDirectSendFeature
{
    ValueTask SendAsync(ReadOnlySequence<byte> buffer);

    /// <summary>The size this sender cuts buffers into (a frame's payload); zero when it sends them whole.</summary>
    int ChunkSize => 0;
}
