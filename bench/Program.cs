using Forwarder.Bench.Cli;

return await BenchCli.Create().Parse(args).InvokeAsync().ConfigureAwait(false);
