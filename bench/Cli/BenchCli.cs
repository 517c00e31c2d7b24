using System.CommandLine;
using System.CommandLine.Parsing;
using System.Net;
using Forwarder.Bench.Backends;
using Forwarder.Bench.Load;

namespace Forwarder.Bench.Cli;

/// <summary>The <c>bench</c> command line: <c>load</c> one target, <c>serve</c> the built-in backends.</summary>
internal static class BenchCli
{
    public const int ExitOk = 0;
    /// <summary>The run did not measure what was asked: a threshold failed, an open-loop run missed its rate, or a comparison's run failed requests.</summary>
    public const int ExitRunFailed = 1;
    public const int ExitUsage = 2;

    public static RootCommand Create()
    {
        var root = new RootCommand("Forwarder's benchmark harness: wrk2-style load with HDR histograms, and built-in backends.")
        {
            CreateLoad(),
            CreateCompare(),
            CreateFidelity(),
            GateCli.Create(),
            MeshCli.Create(),
            CreateServe(),
        };
        return root;
    }

    private static Command CreateLoad()
    {
        var url = new Option<Uri?>("--url")
        {
            Description = "HTTP/1.1 target, http://HOST:PORT/PATH.",
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Empty;
                if (Uri.TryCreate(text, UriKind.Absolute, out var parsed) && parsed.Scheme == Uri.UriSchemeHttp)
                {
                    return parsed;
                }

                result.AddError($"--url: expected http://HOST:PORT/PATH, got '{text}'.");
                return null;
            },
        };
        var tcp = new Option<string?>("--tcp") { Description = "TCP echo target HOST:PORT: each request writes --size bytes and reads them back." };
        var udp = new Option<string?>("--udp") { Description = "Udp echo target HOST:PORT: each request sends a --size byte datagram and waits for one back (a lost one is a timeout)." };
        var size = new Option<int>("--size") { Description = "Bytes per TCP echo request or udp datagram.", DefaultValueFactory = _ => 64 };
        var rate = new Option<double?>("--rate", "-R") { Description = "Requests per second, open loop (wrk2 semantics: latency counts from each request's intended send time). Omit for closed loop." };
        var rampTo = new Option<double?>("--ramp-to") { Description = "Open loop: ramp linearly from --rate to this rate over the duration." };
        var connections = new Option<int>("--connections", "-c") { Description = "Connections, each with one request in flight.", DefaultValueFactory = _ => 32 };
        var duration = DurationOption("--duration", "-d", "Measured time, e.g. 10s.", TimeSpan.FromSeconds(10));
        var warmup = DurationOption("--warmup", null, "Load before measuring, not counted (lets the JIT reach its optimized code).", TimeSpan.FromSeconds(1));
        var timeout = DurationOption("--timeout", null, "A request taking longer is aborted and counted as a timeout; also how long the run waits past its end for requests still due or in flight (at most 2s), which then count as unfinished timeouts.", TimeSpan.FromSeconds(10));
        var threads = new Option<int>("--threads", "-t") { Description = "Socket engine threads the generator runs on (like wrk's -t).", DefaultValueFactory = _ => 1 };
        var hgrm = new Option<string?>("--hgrm") { Description = "Write the latency percentile distribution here, in HdrHistogram's .hgrm layout (milliseconds)." };
        var json = new Option<string?>("--json") { Description = "Write the results here as JSON." };
        var hlog = new Option<string?>("--hlog") { Description = "Write each second's corrected latency here as an HdrHistogram V2 interval log (microseconds)." };
        var close = new Option<bool>("--close") { Description = "HTTP: send Connection: close and open a new connection for every request (the latency includes the connect)." };
        var h2c = new Option<bool>("--h2c") { Description = "HTTP: speak h2c (HTTP/2 with prior knowledge) instead of HTTP/1.1, one stream in flight per connection." };

        AtLeast(connections, 1);
        AtLeast(threads, 1);
        AtLeast(size, 1);
        rate.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double?>() is <= 0)
            {
                r.AddError("--rate must be above 0.");
            }
        });
        rampTo.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double?>() is < 0)
            {
                r.AddError("--ramp-to must be at least 0.");
            }
        });

        var command = new Command("load", "Put load on one target and report throughput and latency percentiles.")
        {
            url, tcp, udp, size, rate, rampTo, connections, duration, warmup, timeout, threads, hgrm, json, hlog, close, h2c,
        };
        command.Validators.Add(result =>
        {
            // Presence only: a value that failed to parse has reported its own error.
            if (new[] { result.GetResult(url), result.GetResult(tcp), result.GetResult(udp) }.Count(r => r is not null) != 1)
            {
                result.AddError("Give exactly one target: --url http://HOST:PORT/PATH, --tcp HOST:PORT or --udp HOST:PORT.");
            }

            foreach (var endpointOption in new[] { tcp, udp })
            {
                if (result.GetValue(endpointOption) is { } text && !ValueParsers.TryParseEndPoint(text, out _))
                {
                    result.AddError($"{endpointOption.Name}: expected HOST:PORT, got '{text}'.");
                }
            }

            if (result.GetValue(close) && result.GetResult(url) is null)
            {
                result.AddError("--close needs --url (it is an HTTP header).");
            }

            if (result.GetValue(h2c) && (result.GetResult(url) is null || result.GetValue(close)))
            {
                result.AddError("--h2c needs --url and goes without --close (an HTTP/2 connection carries many requests).");
            }

            if (result.GetResult(rampTo) is not null && result.GetResult(rate) is null)
            {
                result.AddError("--ramp-to needs --rate (where the ramp starts).");
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            EndPoint? tcpEndPoint = null;
            EndPoint? udpEndPoint = null;
            if (parse.GetValue(tcp) is { } text)
            {
                ValueParsers.TryParseEndPoint(text, out tcpEndPoint);
            }

            if (parse.GetValue(udp) is { } udpText)
            {
                ValueParsers.TryParseEndPoint(udpText, out udpEndPoint);
            }

            var options = new LoadOptions(
                parse.GetValue(url),
                tcpEndPoint,
                parse.GetValue(size),
                parse.GetValue(rate),
                parse.GetValue(rampTo),
                parse.GetValue(connections),
                parse.GetValue(duration),
                parse.GetValue(warmup),
                parse.GetValue(threads),
                parse.GetValue(timeout),
                parse.GetValue(hgrm),
                parse.GetValue(json),
                udpEndPoint,
                parse.GetValue(hlog),
                parse.GetValue(close),
                parse.GetValue(h2c));
            SocketEngineSettings.Apply(options.Threads);
            var stats = await LoadCommand.RunAsync(options, Console.Out, cancellationToken).ConfigureAwait(false);
            return stats.Passed ? ExitOk : ExitRunFailed;
        });
        return command;
    }

    private static Command CreateCompare()
    {
        var name = new Option<string>("--name") { Description = "Report name: written to perf-reports/NAME/ and listed in perf-reports/index.md.", DefaultValueFactory = _ => "compare" };
        var protocol = new Option<string>("--protocol") { Description = "http (HTTP/1.1 to a hello backend) or tcp (request/response to an echo backend).", DefaultValueFactory = _ => "http" };
        protocol.AcceptOnlyFromAmong("http", "tcp");
        var arms = new Option<string?>("--arms") { Description = $"Comma-separated arms, run in this order: {string.Join(", ", Compare.ArmCatalog.All.Keys)}. Default: all that carry the protocol." };
        var rates = new Option<string>("--rates") { Description = "Comma-separated open-loop rates in req/s, and/or max for closed loop.", DefaultValueFactory = _ => "max" };
        var reps = new Option<int>("--reps") { Description = "Repetitions; arms are interleaved within each.", DefaultValueFactory = _ => 3 };
        var duration = DurationOption("--duration", "-d", "Measured time per run.", TimeSpan.FromSeconds(10));
        var warmup = DurationOption("--warmup", null, "Load before each run's measurement.", TimeSpan.FromSeconds(2));
        var connections = new Option<int>("--connections", "-c") { Description = "Connections per run.", DefaultValueFactory = _ => 32 };
        var size = new Option<int>("--size") { Description = "TCP: bytes per request.", DefaultValueFactory = _ => 64 };
        var proxyThreads = new Option<int>("--proxy-threads") { Description = "Threads for every proxy (nbthread, worker_processes, tcp.ioThreads).", DefaultValueFactory = _ => 1 };
        var backend = new Option<string>("--backend") { Description = "HTTP backend: nginx (1 worker; the default when installed) or builtin." };
        backend.AcceptOnlyFromAmong("nginx", "builtin");
        var output = new Option<string?>("--out") { Description = "Report directory; default perf-reports/NAME in the repository." };
        var forwarder = new Option<string?>("--forwarder") { Description = "Forwarder binary; default the repository's Release build (built if missing)." };
        var yarp = new Option<string?>("--yarp") { Description = "YARP peer binary for the yarp arm; default bench/yarp's Release build (built if missing)." };
        AtLeast(reps, 1);
        AtLeast(connections, 1);
        AtLeast(size, 1);
        AtLeast(proxyThreads, 1);
        var command = new Command("compare", "Run arms side by side against one backend, interleaved, and write a report with charts.")
        {
            name, protocol, arms, rates, reps, duration, warmup, connections, size, proxyThreads, backend, output, forwarder, yarp,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(arms) is { } list && list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault(a => !Compare.ArmCatalog.All.ContainsKey(a)) is { } unknown)
            {
                result.AddError($"--arms: unknown arm '{unknown}'; expected some of: {string.Join(", ", Compare.ArmCatalog.All.Keys)}.");
            }

            if (result.GetValue(rates) is { } text && !TryParseRates(text, out _))
            {
                result.AddError($"--rates: expected numbers above 0 and/or max, comma-separated, got '{text}'.");
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            var chosenProtocol = parse.GetValue(protocol) == "tcp" ? Compare.CompareProtocol.Tcp : Compare.CompareProtocol.Http;
            TryParseRates(parse.GetValue(rates)!, out var parsedRates);
            var reportName = parse.GetValue(name)!;
            var options = new Compare.CompareOptions(
                reportName,
                chosenProtocol,
                parse.GetValue(arms)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    ?? (chosenProtocol == Compare.CompareProtocol.Http ? Compare.ArmCatalog.HttpDefaults : Compare.ArmCatalog.TcpDefaults),
                parsedRates,
                parse.GetValue(reps),
                parse.GetValue(duration),
                parse.GetValue(warmup),
                parse.GetValue(connections),
                parse.GetValue(size),
                parse.GetValue(proxyThreads),
                parse.GetValue(backend) ?? (Compare.Tools.Find().Nginx is null ? "builtin" : "nginx"),
                parse.GetValue(output) ?? Path.Combine(Compare.ForwarderBinary.RepositoryRoot() ?? ".", "perf-reports", reportName),
                parse.GetValue(forwarder),
                YarpPath: parse.GetValue(yarp));
            SocketEngineSettings.Apply(1);
            var result = await Compare.CompareRunner.RunAsync(options, Console.Out, cancellationToken).ConfigureAwait(false);
            Compare.CompareReportWriter.Write(result, options.OutputDirectory);
            await Console.Out.WriteLineAsync($"report: {Path.Combine(options.OutputDirectory, "report.md")}").ConfigureAwait(false);
            return await UncleanExitAsync(result.Unclean.Count).ConfigureAwait(false);
        });
        return command;
    }

    private static Command CreateFidelity()
    {
        var backend = new Option<string>("--backend") { Description = "nginx (1 worker) or builtin.", DefaultValueFactory = _ => "nginx" };
        backend.AcceptOnlyFromAmong("nginx", "builtin");
        var reps = new Option<int>("--reps") { Description = "Repetitions, wrk and bench alternating.", DefaultValueFactory = _ => 5 };
        var duration = DurationOption("--duration", "-d", "Measured time per run.", TimeSpan.FromSeconds(5));
        var warmup = DurationOption("--warmup", null, "bench's warm-up before each run.", TimeSpan.FromSeconds(2));
        var connections = new Option<int>("--connections", "-c") { Description = "Connections for both.", DefaultValueFactory = _ => 32 };
        var output = new Option<string?>("--out") { Description = "Report directory; default perf-reports/bench-fidelity in the repository." };
        AtLeast(reps, 1);
        AtLeast(connections, 1);
        var command = new Command("fidelity", "Compare bench load's closed-loop throughput with wrk's on the same backend.") { backend, reps, duration, warmup, connections, output };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new Fidelity.FidelityOptions(
                parse.GetValue(backend)!,
                parse.GetValue(reps),
                parse.GetValue(duration),
                parse.GetValue(warmup),
                parse.GetValue(connections),
                parse.GetValue(output) ?? Path.Combine(Compare.ForwarderBinary.RepositoryRoot() ?? ".", "perf-reports", "bench-fidelity"));
            SocketEngineSettings.Apply(1);
            var runs = await Fidelity.FidelityRunner.RunAsync(options, Console.Out, cancellationToken).ConfigureAwait(false);
            Fidelity.FidelityRunner.WriteReport(options, runs, Compare.Versions.Machine());
            await Console.Out.WriteLineAsync($"report: {Path.Combine(options.OutputDirectory, "report.md")}").ConfigureAwait(false);
            return ExitOk;
        });
        return command;
    }

    /// <summary>A comparison whose runs failed requests or missed their rate has a report, but does not pass.</summary>
    internal static async Task<int> UncleanExitAsync(int unclean)
    {
        if (unclean == 0)
        {
            return ExitOk;
        }

        await Console.Out.WriteLineAsync($"{unclean} run(s) did not measure cleanly (failed or unfinished requests, or the rate missed); see the report").ConfigureAwait(false);
        return ExitRunFailed;
    }

    internal static bool TryParseRates(string text, out List<double?> rates)
    {
        rates = [];
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (part == "max")
            {
                rates.Add(null);
            }
            else if (double.TryParse(part, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var rate) && rate > 0)
            {
                rates.Add(rate);
            }
            else
            {
                return false;
            }
        }

        return rates.Count > 0;
    }

    private static Command CreateServe()
    {
        var http = new Option<string?>("--http") { Description = "Serve the built-in HTTP/1.1 hello backend on IP:PORT (or several, comma-separated)." };
        var echo = new Option<string?>("--echo") { Description = "Serve the built-in TCP echo backend on IP:PORT (or several, comma-separated)." };
        var udpEcho = new Option<string?>("--udp-echo") { Description = "Serve the built-in udp echo backend on IP:PORT (or several, comma-separated)." };
        var h2c = new Option<string?>("--h2c") { Description = "Serve the built-in h2c (HTTP/2, prior knowledge) hello backend on IP:PORT (or several, comma-separated)." };
        var stallAt = DurationOption("--stall-at", null, "HTTP backend: stall every response this long after starting (with --stall-for).", TimeSpan.Zero);
        var stallFor = DurationOption("--stall-for", null, "HTTP backend: how long the stall lasts.", TimeSpan.Zero);
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

            return ExitOk;
        });
        return command;
    }

    private static string[] EndPoints(string? list) => list?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];

    internal static void AtLeast(Option<int> option, int minimum)
        => option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() < minimum)
            {
                result.AddError($"{option.Name} must be at least {minimum}.");
            }
        });

    internal static Option<TimeSpan> DurationOption(string name, string? alias, string description, TimeSpan fallback)
    {
        var option = alias is null ? new Option<TimeSpan>(name) : new Option<TimeSpan>(name, alias);
        option.Description = description;
        option.DefaultValueFactory = _ => fallback;
        option.CustomParser = result =>
        {
            var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Empty;
            if (ValueParsers.TryParseDuration(text, out var value))
            {
                return value;
            }

            result.AddError($"{name}: expected a duration such as 500ms, 10s, 2m or 1h, got '{text}'.");
            return fallback;
        };
        return option;
    }
}
