using System.CommandLine;
using Forwarder.Cli;

// Read once, when ArrayPool<byte>.Shared is first used, so it is set before anything else runs.
// The shared pool keeps 32 arrays per size per core by default; an HTTP/2 stream holds 16 KB
// buffers (SocketsHttpHandler's response buffer, the response copy) for as long as it is in flight,
// so with hundreds of streams most rents missed the pool and allocated: 48 KB a gRPC request, and
// clearing that memory was a tenth of the process's CPU.
if (Environment.GetEnvironmentVariable(SharedPoolDepth.Variable) is null)
{
    Environment.SetEnvironmentVariable(SharedPoolDepth.Variable, SharedPoolDepth.ArraysPerCore);
}

// Signals are the host's to handle (ShutdownSignals: shutdown delay, then the drain):
// System.CommandLine's handling would end the process 2 s after SIGTERM with 143, cutting the drain.
var invocation = new InvocationConfiguration { ProcessTerminationTimeout = null };
return await ForwarderCli.Create().Parse(args).InvokeAsync(invocation).ConfigureAwait(false);

/// <summary>How many arrays of one size ArrayPool&lt;byte&gt;.Shared keeps per core (the runtime's knob; an operator's own setting wins).</summary>
internal static class SharedPoolDepth
{
    public const string Variable = "DOTNET_SYSTEM_BUFFERS_SHAREDARRAYPOOL_MAXARRAYSPERPARTITION";
    public const string ArraysPerCore = "512";
}
