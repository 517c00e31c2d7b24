using System.CommandLine;
using System.CommandLine.Parsing;
using System.Net;
using Forwarder.Bench.Load;

namespace Forwarder.Bench.Cli;

/// <summary>The <c>bench</c> command line (<c>load</c> one target here; compare, fidelity, gate, mesh and serve in their own classes) and the option helpers they share.</summary>
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
            CompareCli.Create(),
            CompareCli.CreateFidelity(),
            GateCli.Create(),
            MeshCli.Create(),
            ServeCli.Create(),
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
