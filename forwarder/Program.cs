using Forwarder.Cli;

return await ForwarderCli.Create().Parse(args).InvokeAsync().ConfigureAwait(false);
