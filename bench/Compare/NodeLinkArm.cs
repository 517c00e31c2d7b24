using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Forwarder.Bench.Compare;

/// <summary>
/// The forwarder across a node link, as two nodes of a mesh run it: node A's tcp listener takes
/// the load and sends each connection over its link (mutual TLS 1.3 + yamux) to node B, which
/// exports the service and dials the backend. Both nodes are processes of the same binary, with
/// certificates it issues itself (<c>forwarder cert</c>).
/// </summary>
internal static class NodeLinkArm
{
    private static readonly TimeSpan ReadyWithin = TimeSpan.FromSeconds(60);

    /// <param name="variables">Extra environment for both nodes, e.g. the DelayInjection build's wait.</param>
    public static async Task<RunningArm> StartAsync(ArmEnvironment env, string name, string binary, IReadOnlyDictionary<string, string>? variables)
    {
        var certs = Path.Combine(env.WorkDirectory, $"{name}-certs");
        await IssueCertificatesAsync(binary, certs).ConfigureAwait(false);
        var link = FreePort.Next();
        var sideDoor = FreePort.Next();
        var entry = FreePort.Next();
        var nodeB = await StartNodeAsync($"{name}-b", binary, NodeB(certs, link, sideDoor, env.Backend, env.ProxyThreads), sideDoor, env, variables).ConfigureAwait(false);
        PeerProcess? nodeA = null;
        try
        {
            nodeA = await StartNodeAsync($"{name}-a", binary, NodeA(certs, link, entry, env.Backend, env.ProxyThreads), entry, env, variables).ConfigureAwait(false);
            await WaitUntilCarriedAsync(name, entry, env.Protocol).ConfigureAwait(false);
        }
        catch
        {
            if (nodeA is not null)
            {
                await nodeA.DisposeAsync().ConfigureAwait(false);
            }

            await nodeB.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new RunningArm(name, entry, [nodeA, nodeB]);
    }

    private static async Task<PeerProcess> StartNodeAsync(string name, string binary, string config, IPEndPoint waitFor, ArmEnvironment env, IReadOnlyDictionary<string, string>? variables)
    {
        var path = Path.Combine(env.WorkDirectory, $"{name}.yaml");
        await File.WriteAllTextAsync(path, config).ConfigureAwait(false);
        return await PeerProcess.StartAsync(name, binary, ["--config", path, "--log-level", "Warning"], waitFor, Path.Combine(env.WorkDirectory, $"{name}.log"), variables).ConfigureAwait(false);
    }

    private static async Task IssueCertificatesAsync(string binary, string folder)
    {
        var start = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in (string[])["cert", "--out", folder, "edge-a", "edge-b"])
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {binary} cert.");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{binary} cert failed with code {process.ExitCode}: {await errors.ConfigureAwait(false)}{await output.ConfigureAwait(false)}");
        }
    }

    /// <summary>
    /// Waits until a connection through node A gets an answer from the backend: A's port opens
    /// before its link to B is up, and a gate that measured the first dial would fail it.
    /// </summary>
    private static async Task WaitUntilCarriedAsync(string name, IPEndPoint entry, CompareProtocol protocol)
    {
        var request = protocol == CompareProtocol.Http ? "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"u8.ToArray() : "ready?"u8.ToArray();
        var deadline = Stopwatch.GetTimestamp() + (long)(ReadyWithin.TotalSeconds * Stopwatch.Frequency);
        var answer = new byte[1];
        string last = "no attempt";
        while (Stopwatch.GetTimestamp() < deadline)
        {
            using var socket = new Socket(entry.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            using var attempt = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await socket.ConnectAsync(entry, attempt.Token).ConfigureAwait(false);
                await socket.SendAsync(request, attempt.Token).ConfigureAwait(false);
                if (await socket.ReceiveAsync(answer, attempt.Token).ConfigureAwait(false) == 1)
                {
                    return;
                }

                last = "closed without an answer";
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                last = ex.Message;
            }

            await Task.Delay(100).ConfigureAwait(false);
        }

        throw new InvalidOperationException($"{name}: no answer through the node link within {ReadyWithin.TotalSeconds:0} s ({last}).");
    }

    /// <summary>Node A: the listener the load enters, its service's endpoint on node B.</summary>
    private static string NodeA(string certs, IPEndPoint link, IPEndPoint entry, IPEndPoint backend, int threads) => $"""
        tcp:
          ioThreads: {threads}
        node:
          name: edge-a
          certificate: {Path.Combine(certs, "edge-a.pem")}
          key: {Path.Combine(certs, "edge-a.key")}
          ca: {Path.Combine(certs, "ca.pem")}
          peers:
            - name: edge-b
              address: '{link}'
        listeners:
          - name: bench
            listen: {entry}
            service: backend
        services:
          backend:
            endpoints:
              - address: {backend}
                node: edge-b
        """;

    /// <summary>Node B: the link's listening side, exporting the service; its echo listener is only there to show it is up.</summary>
    private static string NodeB(string certs, IPEndPoint link, IPEndPoint sideDoor, IPEndPoint backend, int threads) => $"""
        tcp:
          ioThreads: {threads}
        node:
          name: edge-b
          listen: {link}
          certificate: {Path.Combine(certs, "edge-b.pem")}
          key: {Path.Combine(certs, "edge-b.key")}
          ca: {Path.Combine(certs, "ca.pem")}
          peers:
            - name: edge-a
        listeners:
          - name: ready
            listen: {sideDoor}
            protocol: echo
        services:
          backend:
            export: true
            endpoints:
              - address: {backend}
        """;
}
