using System.Net.Sockets;
using Forwarder.Metrics;

namespace Forwarder.Runtime;

/// <summary>Sorts what accept() threw into the reasons the metrics and the log name.</summary>
internal static class AcceptFailures
{
    public static AcceptFailure Classify(Exception exception) => exception switch
    {
        SocketException { SocketErrorCode: SocketError.TooManyOpenSockets } => AcceptFailure.FdLimit,
        SocketException { SocketErrorCode: SocketError.NoBufferSpaceAvailable } => AcceptFailure.NoBuffers,
        OutOfMemoryException => AcceptFailure.NoBuffers,
        _ => AcceptFailure.Other,
    };

    public static string Label(AcceptFailure failure) => failure switch
    {
        AcceptFailure.FdLimit => "fd_limit",
        AcceptFailure.NoBuffers => "no_buffers",
        _ => "other",
    };
}
