using System.Text.Json.Nodes;

namespace Forwarder.Tests.Cluster;

/// <content>Objects shaped as the Kubernetes API reference shows them: Service, EndpointSlice, and the 410 Expired Status event.</content>
internal sealed partial class FakeKubeApiServer
{
    public static JsonObject Service(string ns, string name, string clusterIp, params (string Name, int Port, int TargetPort, string Protocol)[] ports) => new()
    {
        ["kind"] = "Service",
        ["apiVersion"] = "v1",
        ["metadata"] = new JsonObject
        {
            ["name"] = name,
            ["namespace"] = ns,
            ["uid"] = Guid.NewGuid().ToString(),
            ["creationTimestamp"] = "2026-12-01T00:00:00Z",
            ["labels"] = new JsonObject { ["app"] = name },
        },
        ["spec"] = new JsonObject
        {
            ["ports"] = new JsonArray([.. ports.Select(p => (JsonNode)new JsonObject { ["name"] = p.Name, ["protocol"] = p.Protocol, ["port"] = p.Port, ["targetPort"] = p.TargetPort })]),
            ["selector"] = new JsonObject { ["app"] = name },
            ["clusterIP"] = clusterIp,
            ["clusterIPs"] = new JsonArray(clusterIp),
            ["type"] = "ClusterIP",
            ["sessionAffinity"] = "None",
            ["ipFamilies"] = new JsonArray("IPv4"),
            ["ipFamilyPolicy"] = "SingleStack",
            ["internalTrafficPolicy"] = "Cluster",
        },
        ["status"] = new JsonObject { ["loadBalancer"] = new JsonObject() },
    };

    /// <param name="endpoints">Each endpoint's address, node, zone and ready condition.</param>
    public static JsonObject Slice(string ns, string service, string name, string portName, int port, params (string Address, string Node, string Zone, bool Ready)[] endpoints) => new()
    {
        ["kind"] = "EndpointSlice",
        ["apiVersion"] = "discovery.k8s.io/v1",
        ["metadata"] = new JsonObject
        {
            ["name"] = name,
            ["generateName"] = $"{service}-",
            ["namespace"] = ns,
            ["uid"] = Guid.NewGuid().ToString(),
            ["creationTimestamp"] = "2026-12-01T00:00:00Z",
            ["labels"] = new JsonObject
            {
                ["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io",
                ["kubernetes.io/service-name"] = service,
            },
            ["ownerReferences"] = new JsonArray(new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Service", ["name"] = service, ["uid"] = Guid.NewGuid().ToString(), ["controller"] = true, ["blockOwnerDeletion"] = true }),
        },
        ["addressType"] = "IPv4",
        ["endpoints"] = new JsonArray([.. endpoints.Select(e => (JsonNode)new JsonObject
        {
            ["addresses"] = new JsonArray(e.Address),
            ["conditions"] = new JsonObject { ["ready"] = e.Ready, ["serving"] = e.Ready, ["terminating"] = false },
            ["nodeName"] = e.Node,
            ["zone"] = e.Zone,
            ["targetRef"] = new JsonObject { ["kind"] = "Pod", ["namespace"] = ns, ["name"] = $"{service}-{e.Address}", ["uid"] = Guid.NewGuid().ToString() },
        })]),
        ["ports"] = new JsonArray(new JsonObject { ["name"] = portName, ["protocol"] = "TCP", ["port"] = port }),
    };

    private static JsonObject Gone(long version) => new()
    {
        ["type"] = "ERROR",
        ["object"] = new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = $"too old resource version: {version} ({version + 1})",
            ["reason"] = "Expired",
            ["code"] = 410,
        },
    };
}
