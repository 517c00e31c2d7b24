using System.Net;
using Yarp.ReverseProxy.Configuration;

// yarp-peer --listen IP:PORT --backend IP:PORT: every request to the listener is proxied to the
// backend, as a one-route YARP gateway configured in code would do it. Everything else is YARP's
// and Kestrel's defaults (server GC, pooled keep-alive upstream connections), so the arm measures
// what a .NET user gets out of the box.
var listen = IPEndPoint.Parse(Argument(args, "--listen"));
var backend = IPEndPoint.Parse(Argument(args, "--backend"));

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(listen));
builder.Services.AddReverseProxy().LoadFromMemory(
    [new RouteConfig { RouteId = "all", ClusterId = "backend", Match = new RouteMatch { Path = "{**path}" } }],
    [new ClusterConfig { ClusterId = "backend", Destinations = new Dictionary<string, DestinationConfig> { ["backend"] = new() { Address = $"http://{backend}" } } }]);

var app = builder.Build();
app.MapReverseProxy();
await app.RunAsync();

static string Argument(string[] args, string name)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : throw new ArgumentException($"usage: yarp-peer --listen IP:PORT --backend IP:PORT (missing {name})");
}
