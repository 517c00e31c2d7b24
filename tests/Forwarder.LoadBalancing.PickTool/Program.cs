using System.Globalization;
using System.IO.Hashing;
using Forwarder.LoadBalancing;

// Usage: PickTool POLICY ENDPOINTS KEYS — prints the endpoint index picked for keys 0..KEYS-1.
var policy = args[0];
var endpointCount = int.Parse(args[1], CultureInfo.InvariantCulture);
var keys = int.Parse(args[2], CultureInfo.InvariantCulture);
var endpoints = Enumerable.Range(0, endpointCount).Select(i => new LoadBalancerEndpoint($"10.1.{i / 256}.{i % 256}:8080", 1 + (i % 3))).ToArray();
var balancer = LoadBalancingPolicies.Create(policy, endpoints);
for (var i = 0; i < keys; i++)
{
    Console.Out.Write(balancer.Pick(XxHash64.HashToUInt64(BitConverter.GetBytes(i))).ToString(CultureInfo.InvariantCulture));
    Console.Out.Write(i + 1 < keys ? ',' : '\n');
}
