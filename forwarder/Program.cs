using System.CommandLine;
using Forwarder.Cli;

// Signals are the host's to handle (ShutdownSignals: shutdown delay, then the drain):
// System.CommandLine's handling would end the process 2 s after SIGTERM with 143, cutting the drain.
var invocation = new InvocationConfiguration { ProcessTerminationTimeout = null };
return await ForwarderCli.Create().Parse(args).InvokeAsync(invocation).ConfigureAwait(false);
