using System.Diagnostics;
using System.Net;
using Forwarder.Bench.Backends;
using Forwarder.Bench.Cli;
using Forwarder.Bench.Tests.Infrastructure;

namespace Forwarder.Bench.Tests.Cli;

[Collection(TimingCollection.Name)]
public sealed class BenchCliTests
{
    [Theory]
    [InlineData("load --url http://127.0.0.1:8080/ --connections 4 --duration 10s --warmup 2s --threads 2 --hgrm a.hgrm --json a.json")]
    [InlineData("load --url http://127.0.0.1:8080/path?q=1 --rate 1000 -c 32 -d 30s")]
    [InlineData("load --url http://127.0.0.1:8080/ --rate 100 --ramp-to 1000 -d 1m")]
    [InlineData("load --tcp 127.0.0.1:9000 --size 512 -c 8 -d 500ms")]
    [InlineData("load --tcp backend.local:9000")]
    [InlineData("load --udp 127.0.0.1:9000 --size 512 -c 8 --rate 1000")]
    [InlineData("serve --udp-echo 127.0.0.1:9001")]
    [InlineData("serve --h2c 127.0.0.1:8082")]
    [InlineData("load --url http://127.0.0.1:8082/ --h2c --rate 1000 -c 16")]
    [InlineData("compare --protocol tcp --arms direct,forwarder --rates max,1000 --reps 2")]
    [InlineData("serve --http 127.0.0.1:8080 --echo 127.0.0.1:9000 --stall-at 5s --stall-for 1s")]
    [InlineData("fidelity --backend builtin --reps 1")]
    [InlineData("gate --reps 10 --summary gate.md --p50-growth 5% --throughput-growth 0.1 --alpha 1%")]
    [InlineData("gate --base HEAD~1 --history h.tsv -c 1 -d 1s --max-connections 32 --max-duration 2s --warmup 250ms --warmup-reps 2")]
    [InlineData("gate --calibrate --sessions 4 --reps 10 --gate-reps 8 --out cal")]
    [InlineData("gate --calibrate --from samples.json --inject 1.34,3.67")]
    [InlineData("gate --base-forwarder base/forwarder --open-rate 1000 --reps 8")]
    [InlineData("mesh --protocols http -k 10 -m 2 --arms no-mesh,node-forwarder --rates 20,100,max --reps 2 -d 5s")]
    [InlineData("serve --http 127.0.0.1:8080,127.0.0.1:8081 --echo 127.0.0.1:9000")]
    public void Parse_ValidCommandLines_HaveNoErrors(string commandLine)
    {
        var result = BenchCli.Create().Parse(commandLine.Split(' '));

        Assert.Empty(result.Errors);
    }

    [Theory]
    [InlineData("load -c 4", "Give exactly one target")]
    [InlineData("load --url http://127.0.0.1:1/ --tcp 127.0.0.1:2", "Give exactly one target")]
    [InlineData("load --url https://127.0.0.1:1/", "--url: expected http://HOST:PORT/PATH, got 'https://127.0.0.1:1/'")]
    [InlineData("load --url nonsense", "--url: expected http://HOST:PORT/PATH")]
    [InlineData("load --tcp 127.0.0.1", "--tcp: expected HOST:PORT, got '127.0.0.1'")]
    [InlineData("load --udp 127.0.0.1", "--udp: expected HOST:PORT, got '127.0.0.1'")]
    [InlineData("load --tcp 127.0.0.1:1 --udp 127.0.0.1:2", "Give exactly one target")]
    [InlineData("load --url http://127.0.0.1:1/ --duration soon", "--duration: expected a duration such as 500ms, 10s, 2m or 1h, got 'soon'")]
    [InlineData("load --url http://127.0.0.1:1/ --rate 0", "--rate must be above 0")]
    [InlineData("load --url http://127.0.0.1:1/ --ramp-to 100", "--ramp-to needs --rate")]
    [InlineData("load --url http://127.0.0.1:1/ -c 0", "--connections must be at least 1")]
    [InlineData("compare --arms direct,envoy", "--arms: unknown arm 'envoy'")]
    [InlineData("compare --rates max,fast", "--rates: expected numbers above 0 and/or max")]
    [InlineData("serve", "Give --http IP:PORT, --echo IP:PORT, --udp-echo IP:PORT, --h2c IP:PORT, or several.")]
    [InlineData("serve --h2c nowhere", "--h2c: expected IP:PORT such as 127.0.0.1:8080, got 'nowhere'.")]
    [InlineData("load --tcp 127.0.0.1:1 --h2c", "--h2c needs --url and goes without --close")]
    [InlineData("load --url http://127.0.0.1:1/ --h2c --close", "--h2c needs --url and goes without --close")]
    [InlineData("gate --open-rate 0", "--open-rate: must be above 0.")]
    [InlineData("gate --p50-growth lots", "--p50-growth: expected a share such as 5% or 0.05, got 'lots'.")]
    [InlineData("gate --reps 1", "--reps must be at least 2.")]
    [InlineData("gate --calibrate --inject 1.5", "--inject: expected CHUNK_US,REQUEST_US (two numbers of microseconds, 0 or more), got '1.5'.")]
    [InlineData("mesh --protocols udp", "--protocols: expected http and/or tcp, got 'udp'.")]
    [InlineData("mesh --arms no-mesh,envoy-sidecar", "--arms: unknown arm 'envoy-sidecar'")]
    [InlineData("serve --http 127.0.0.1:8080,nowhere", "--http: expected IP:PORT such as 127.0.0.1:8080, got 'nowhere'.")]
    public void Parse_InvalidCommandLines_SayWhatIsWrong(string commandLine, string message)
    {
        var result = BenchCli.Create().Parse(commandLine.Split(' '));

        Assert.Contains(result.Errors, e => e.Message.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Load_AsAProcess_PrintsTheSummaryAndWritesJson()
    {
        await using var server = new HelloHttpServer(new IPEndPoint(IPAddress.Loopback, 0));
        var json = Path.Combine(Path.GetTempPath(), $"bench-cli-{Guid.NewGuid():N}.json");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            ArgumentList = { typeof(BenchCli).Assembly.Location, "load", "--url", $"http://{server.EndPoint}/", "-c", "2", "-d", "1s", "--warmup", "0", "--json", json },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };

        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var errors = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();

        Assert.True(process.ExitCode == 0, errors);
        Assert.StartsWith($"Running 1s test @ http://{server.EndPoint}/", output, StringComparison.Ordinal);
        Assert.Matches(@"\nRequests/sec:\s+[0-9]+\.[0-9]{2}\r?\n$", output);
        Assert.True(File.Exists(json));
        File.Delete(json);
    }

    [Fact]
    public async Task Load_AsAProcess_BackendHangs_SaysSoAndExitsNonZero()
    {
        await using var server = new HangingHttpBackend(answers: 20);
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            ArgumentList = { typeof(BenchCli).Assembly.Location, "load", "--url", $"http://{server.EndPoint}/", "--rate", "100", "-c", "4", "-d", "1s", "--warmup", "0", "--timeout", "2s" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));

        var text = await output;
        Assert.True(process.ExitCode == BenchCli.ExitRunFailed, $"exit {process.ExitCode}: {await errors}\n{text}");
        // At least the 80 never answered fail (a cold process on a loaded machine may answer some
        // of the first 20 after the end, or time them out), most of them unfinished at the end.
        var failed = System.Text.RegularExpressions.Regex.Match(text, @"\n  Errors: ([0-9]+) \(([0-9]+) timeouts\)");
        Assert.True(failed.Success && int.Parse(failed.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) >= 80, text);
        Assert.Matches(@"\n  Unfinished: [0-9]+ of 100 requests not sent or not answered 2s after the end", text);
        Assert.Matches(@"\n  RATE NOT ACHIEVED: [0-9.]+% of the requested rate completed", text);
    }
}
