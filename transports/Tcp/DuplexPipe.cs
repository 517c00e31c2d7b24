using System.IO.Pipelines;

namespace Forwarder.Transports.Tcp;

/// <summary>A connection's input and output as one <see cref="IDuplexPipe"/>.</summary>
public sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
{
    public PipeReader Input { get; } = input;

    public PipeWriter Output { get; } = output;
}
