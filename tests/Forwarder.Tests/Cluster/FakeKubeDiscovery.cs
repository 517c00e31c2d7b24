namespace Forwarder.Tests.Cluster;

/// <summary>The API discovery documents (shapes from the API reference) a real client such as kubectl reads before it lists anything.</summary>
internal static class FakeKubeDiscovery
{
    public static string? Document(string path) => path switch
    {
        "/api" => """{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:6443"}]}""",
        "/apis" => """{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"discovery.k8s.io","versions":[{"groupVersion":"discovery.k8s.io/v1","version":"v1"}],"preferredVersion":{"groupVersion":"discovery.k8s.io/v1","version":"v1"}}]}""",
        "/api/v1" => """{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"services","singularName":"","namespaced":true,"kind":"Service","verbs":["create","delete","get","list","patch","update","watch"],"shortNames":["svc"],"categories":["all"]}]}""",
        "/apis/discovery.k8s.io/v1" => """{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"discovery.k8s.io/v1","resources":[{"name":"endpointslices","singularName":"","namespaced":true,"kind":"EndpointSlice","verbs":["create","delete","deletecollection","get","list","patch","update","watch"]}]}""",
        "/version" => """{"major":"1","minor":"30","gitVersion":"v1.30.0","platform":"linux/amd64"}""",
        _ => null,
    };
}
