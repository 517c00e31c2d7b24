using System.Text.Json;
using System.Text.Json.Serialization;

namespace Forwarder.Cluster;

// The fields of the Kubernetes API objects discovery reads (core/v1 Service, discovery.k8s.io/v1
// EndpointSlice, meta/v1 lists, watch events and Status); everything else in the payloads is skipped.

internal sealed class ObjectMeta
{
    public string? Name { get; set; }

    public string? Namespace { get; set; }

    public string? ResourceVersion { get; set; }

    public Dictionary<string, string>? Labels { get; set; }
}

internal sealed class ListMeta
{
    public string? ResourceVersion { get; set; }
}

internal sealed class KubeList<T>
{
    public ListMeta? Metadata { get; set; }

    public List<T>? Items { get; set; }
}

internal sealed class KubeService
{
    public ObjectMeta? Metadata { get; set; }

    public ServiceSpec? Spec { get; set; }
}

internal sealed class ServiceSpec
{
    public string? Type { get; set; }

    public string? ClusterIP { get; set; }

    public List<string>? ClusterIPs { get; set; }

    public List<ServicePort>? Ports { get; set; }
}

internal sealed class ServicePort
{
    public string? Name { get; set; }

    public string? Protocol { get; set; }

    public int Port { get; set; }

    public string? AppProtocol { get; set; }
}

internal sealed class EndpointSlice
{
    public ObjectMeta? Metadata { get; set; }

    public string? AddressType { get; set; }

    public List<SliceEndpoint>? Endpoints { get; set; }

    public List<SlicePort>? Ports { get; set; }
}

internal sealed class SliceEndpoint
{
    public List<string>? Addresses { get; set; }

    public EndpointConditions? Conditions { get; set; }

    public string? NodeName { get; set; }

    public string? Zone { get; set; }
}

/// <summary>Unset conditions mean ready, serving as ready, and not terminating (the API's documented defaults).</summary>
internal sealed class EndpointConditions
{
    public bool? Ready { get; set; }

    public bool? Serving { get; set; }

    public bool? Terminating { get; set; }
}

internal sealed class SlicePort
{
    public string? Name { get; set; }

    public string? Protocol { get; set; }

    public int? Port { get; set; }

    public string? AppProtocol { get; set; }
}

/// <summary>One line of a watch stream: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR (whose object is a Status).</summary>
internal sealed class WatchEvent
{
    public string? Type { get; set; }

    public JsonElement Object { get; set; }
}

internal sealed class KubeStatus
{
    public int Code { get; set; }

    public string? Reason { get; set; }

    public string? Message { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(KubeList<KubeService>))]
[JsonSerializable(typeof(KubeList<EndpointSlice>))]
[JsonSerializable(typeof(KubeService))]
[JsonSerializable(typeof(EndpointSlice))]
[JsonSerializable(typeof(WatchEvent))]
[JsonSerializable(typeof(KubeStatus))]
[JsonSerializable(typeof(ObjectMeta))]
[JsonSerializable(typeof(ClusterState))]
internal sealed partial class KubernetesJson : JsonSerializerContext;
