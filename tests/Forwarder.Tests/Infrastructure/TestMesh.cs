using Forwarder.Tunnels;

namespace Forwarder.Tests.Infrastructure;

/// <summary>
/// Certificates for a test mesh (what <c>forwarder cert</c> and <c>forwarder cert --relay</c>
/// make): a CA with nodes edge-a, edge-b and edge-c and relays relay-1 and relay-2, plus a
/// foreign CA's edge-a, and node configs using them (edge-b admits edge-a and exports its service).
/// </summary>
internal sealed class TestMesh : IDisposable
{
    public TestMesh()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("forwarder-mesh-").FullName;
        using (var authority = MeshAuthority.OpenOrCreate(Directory, TimeSpan.FromDays(1), out _))
        {
            foreach (var name in new[] { "edge-a", "edge-b", "edge-c" })
            {
                authority.IssueNode(name, Directory, TimeSpan.FromDays(1)).Dispose();
            }

            foreach (var name in new[] { "relay-1", "relay-2" })
            {
                authority.IssueRelay(name, Directory, TimeSpan.FromDays(1)).Dispose();
            }
        }

        Foreign = System.IO.Directory.CreateDirectory(Path.Combine(Directory, "foreign")).FullName;
        using var other = MeshAuthority.OpenOrCreate(Foreign, TimeSpan.FromDays(1), out _);
        other.IssueNode("edge-a", Foreign, TimeSpan.FromDays(1)).Dispose();
    }

    public string Directory { get; }

    /// <summary>A CA the mesh does not trust, with a certificate for edge-a.</summary>
    public string Foreign { get; }

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);

    /// <summary>Node edge-b: hosts <paramref name="hostedEndpoint"/>, takes direct links on a free port, registers with <paramref name="relays"/>.</summary>
    public Task<RunningForwarder> StartNodeBAsync(string hostedEndpoint, params RunningRelay[] relays) => StartNodeBAsync(hostedEndpoint, "edge-a", relays);

    /// <summary>Node edge-b as above, admitting only <paramref name="peer"/>, with <c>node.relayMode</c> <paramref name="relayMode"/>.</summary>
    public Task<RunningForwarder> StartNodeBAsync(string hostedEndpoint, string peer, RunningRelay[] relays, string relayMode = "splice") => RunningForwarder.StartAsync($"""
        node:
          name: edge-b
          listen: '127.0.0.1:0'
          keepAlive: 2s
          relayMode: {relayMode}
        {Identity("edge-b", Directory)}
          peers:
            - name: {peer}
        {Relays(relays)}
        listeners:
          - name: unused
            listen: '127.0.0.1:0'
            protocol: echo
        services:
          app:
            export: true
            endpoints:
              - address: {hostedEndpoint}
        """);

    /// <summary>Node edge-a: its listener "front" reaches <paramref name="endpoint"/> on edge-b, at <paramref name="linkAddress"/> if given, else only through <paramref name="relays"/>.</summary>
    public Task<RunningForwarder> StartNodeAAsync(string endpoint, string? linkAddress, RunningRelay[] relays, string? certificates = null)
        => RunningForwarder.StartAsync($"""
            node:
              name: edge-a
              keepAlive: 2s
            {Identity("edge-a", certificates ?? Directory)}
              peers:
                - name: edge-b
            {(linkAddress is null ? string.Empty : $"      address: '{linkAddress}'")}
            {Relays(relays)}
            listeners:
              - name: front
                listen: '127.0.0.1:0'
                service: app
            services:
              app:
                connectAttempts: 1
                endpoints:
                  - {"{"} address: '{endpoint}', node: edge-b {"}"}
            """);

    private static string Identity(string name, string folder) => $"""
          certificate: {Path.Combine(folder, name + ".pem")}
          key: {Path.Combine(folder, name + ".key")}
          ca: {Path.Combine(folder, "ca.pem")}
        """;

    private static string Relays(RunningRelay[] relays) => relays.Length == 0
        ? string.Empty
        : "  relays:\n" + string.Concat(relays.Select(r => $"    - {{ name: {r.Name}, address: '{r.Address}' }}\n"));
}
