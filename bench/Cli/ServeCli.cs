using System.CommandLine;
using System.Net;
using Forwarder.Bench.Backends;
using Forwarder.Bench.Load;

namespace Forwarder.Bench.Cli;

/// <summary><c>bench serve</c>: the built-in backends (HTTP/1.1 and h2c hello, TCP and udp echo) until interrupted.</summary>
internal static class ServeCli
{
    public static Command Create()
    {
        var http = new Option<string?>("--http") { Description = "Serve the built-in HTTP/1.1 hello backend on IP:PORT (or several, comma-separated)." };
        var echo = new Option<string?>("--echo") { Description = "Serve the built-in TCP echo backend on IP:PORT (or several, comma-separated)." };
        var udpEcho = new Option<string?>("--udp-echo") { Description = "Serve the built-in udp echo backend on IP:PORT (or several, comma-separated)." };
        var h2c = new Option<string?>("--h2c") { Description = "Serve the built-in h2c (HTTP/2, prior knowledge) hello backend on IP:PORT (or several, comma-separated)." };
        var stallAt = BenchCli.DurationOption("--stall-at", null, "HTTP backend: stall every response this long after starting (with --stall-for).", TimeSpan.Zero);
        var stallFor = BenchCli.DurationOption("--stall-for", null, "HTTP backend: how long the stall lasts.", TimeSpan.Zero);
        var command = new Command("serve", "Run the built-in backends until interrupted.") { http, echo, udpEcho, h2c, stallAt, stallFor };
        command.Validators.Add(result =>
        {
            if (result.GetValue(http) is null && result.GetValue(echo) is null && result.GetValue(udpEcho) is null && result.GetValue(h2c) is null)
            {
                result.AddError("Give --http IP:PORT, --echo IP:PORT, --udp-echo IP:PORT, --h2c IP:PORT, or several.");
            }

            foreach (var option in new[] { http, echo, udpEcho, h2c })
            {
                if (result.GetValue(option) is { } text && EndPoints(text).FirstOrDefault(e => !IPEndPoint.TryParse(e, out _)) is { } bad)
                {
                    result.AddError($"{option.Name}: expected IP:PORT such as 127.0.0.1:8080, got '{bad}'.");
                }
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            var hellos = EndPoints(parse.GetValue(http)).Select(e => new HelloHttpServer(IPEndPoint.Parse(e))).ToList();
            var echoes = EndPoints(parse.GetValue(echo)).Select(e => new EchoServer(IPEndPoint.Parse(e))).ToList();
            var udpEchoes = EndPoints(parse.GetValue(udpEcho)).Select(e => new UdpEchoServer(IPEndPoint.Parse(e))).ToList();
            var h2cs = EndPoints(parse.GetValue(h2c)).Select(e => new H2cHelloServer(IPEndPoint.Parse(e))).ToList();
            try
            {
                foreach (var hello in hellos)
                {
                    await Console.Out.WriteLineAsync($"http hello backend on {hello.EndPoint}").ConfigureAwait(false);
                }

                foreach (var echoServer in echoes)
                {
                    await Console.Out.WriteLineAsync($"tcp echo backend on {echoServer.EndPoint}").ConfigureAwait(false);
                }

                foreach (var udpEchoServer in udpEchoes)
                {
                    await Console.Out.WriteLineAsync($"udp echo backend on {udpEchoServer.EndPoint}").ConfigureAwait(false);
                }

                foreach (var h2cServer in h2cs)
                {
                    await Console.Out.WriteLineAsync($"h2c hello backend on {h2cServer.EndPoint}").ConfigureAwait(false);
                }

                if (hellos.Count > 0 && parse.GetValue(stallFor) > TimeSpan.Zero)
                {
                    await Task.Delay(parse.GetValue(stallAt), cancellationToken).ConfigureAwait(false);
                    hellos.ForEach(hello => hello.StallFor(parse.GetValue(stallFor)));
                    await Console.Out.WriteLineAsync($"stalling for {Format.Duration(parse.GetValue(stallFor))}").ConfigureAwait(false);
                }

                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Interrupted: stop serving.
            }
            finally
            {
                foreach (var hello in hellos)
                {
                    await hello.DisposeAsync().ConfigureAwait(false);
                }

                foreach (var echoServer in echoes)
                {
                    await echoServer.DisposeAsync().ConfigureAwait(false);
                }

                foreach (var udpEchoServer in udpEchoes)
                {
                    await udpEchoServer.DisposeAsync().ConfigureAwait(false);
                }

                foreach (var h2cServer in h2cs)
                {
                    await h2cServer.DisposeAsync().ConfigureAwait(false);
                }
            }

            return BenchCli.ExitOk;
        });
        return command;
    }

    private static string[] EndPoints(string? list) => list?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
}
