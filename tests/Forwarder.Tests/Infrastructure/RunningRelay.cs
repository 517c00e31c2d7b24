using System.Net;
using Forwarder.Configuration;
using Forwarder.Relay;
using Forwarder.Runtime;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tests.Infrastructure;

/// <summary>A relay server (what <c>forwarder relay</c> runs) hosted in the test process.</summary>
internal sealed class RunningRelay : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly string _directory;
    private bool _stopped;

    private RunningRelay(IHost host, string directory, string name)
    {
        _host = host;
        _directory = directory;
        Name = name;
    }

    public string Name { get; }

    public RelayRegistry Registry => _host.Services.GetRequiredService<RelayRegistry>();

    public IPEndPoint EndPoint => (IPEndPoint)Server.BoundEndPoint!;

    public RelayServer Server => _host.Services.GetRequiredService<RelayServer>();

    /// <summary>HOST:PORT nodes dial; a test may point them elsewhere (a recorder on another loopback address) with <see cref="AddressOverride"/>.</summary>
    public string Address => AddressOverride ?? $"127.0.0.1:{EndPoint.Port}";

    public string? AddressOverride { get; set; }

    /// <summary>Tokens the relay holds TCP rendezvous connections for.</summary>
    public RendezvousTokens TcpTokens => _host.Services.GetRequiredService<RelayServer>().TcpTokens;

    /// <summary>The splice port; null when the relay only terminates.</summary>
    public IPEndPoint? SpliceEndPoint => _host.Services.GetRequiredService<RelayServer>().SpliceEndPoint;

    public Uri AdminAddress => _host.Services.GetRequiredService<RelayAdmin>().Address ?? throw new InvalidOperationException("No admin endpoint configured.");

    /// <param name="certificates">Where ca.pem and NAME.pem/.key are.</param>
    /// <param name="limits">YAML for relay.limits, indented for the section; none when empty.</param>
    /// <param name="mode">relay.mode: terminate unless a test is about splicing, so the tests of the terminating relay test it.</param>
    /// <param name="splice">More YAML for the relay section (splicePort, ticketLifetime), indented for it.</param>
    /// <param name="listen">The listen address: loopback unless a test is about another ([::] for dual mode).</param>
    /// <param name="time">The clock of the relay's token, hold and splice timeouts, for a test that drives it; the system's by default.</param>
    public static async Task<RunningRelay> StartAsync(string certificates, string name = "relay-1", int port = 0, string limits = "", string mode = "terminate", string splice = "", string listen = "127.0.0.1", TimeProvider? time = null)
    {
        var directory = Directory.CreateTempSubdirectory("forwarder-relay-").FullName;
        var path = Path.Combine(directory, "relay.yaml");
        await File.WriteAllTextAsync(path, $"""
            relay:
              name: {name}
              listen: '{listen}:{port}'
              certificate: {Path.Combine(certificates, name + ".pem")}
              key: {Path.Combine(certificates, name + ".key")}
              ca: {Path.Combine(certificates, "ca.pem")}
              mode: {mode}
              splicePort: 0
            {limits}
            {splice}
            admin:
              listen: '127.0.0.1:0'
            """);
        var host = RelayHost.Build(RelayConfigReader.LoadFile(path), new LoggingOptions(LogLevel.Warning, Json: false), time);
        await host.StartAsync();
        return new RunningRelay(host, directory, name);
    }

    public async Task StopAsync()
    {
        if (!_stopped)
        {
            _stopped = true;
            await _host.StopAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _host.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
