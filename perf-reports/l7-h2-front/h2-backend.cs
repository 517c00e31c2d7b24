using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
// The backend for every arm: h2c on 18090, TLS h2 on 18093 (the direct TLS arm). A gRPC-shaped
// unary answer on /echo.Echo/Unary (one message, grpc-status trailer), "hello" (5 bytes) on anything else.
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
var cert = X509Certificate2.CreateFromPemFile(args[0], args[1]);
builder.WebHost.ConfigureKestrel(k =>
{
    k.ListenLocalhost(18090, o => o.Protocols = HttpProtocols.Http2);
    k.ListenLocalhost(18093, o => { o.Protocols = HttpProtocols.Http2; o.UseHttps(cert); });
    k.Limits.Http2.MaxStreamsPerConnection = 1000;
    k.AllowAlternateSchemes = true; // HAProxy keeps the client's :scheme https on its h2c hop to us
});
var app = builder.Build();
var reply = new byte[] { 0, 0, 0, 0, 12, 10, 10, (byte)'h', (byte)'e', (byte)'l', (byte)'l', (byte)'o', (byte)' ', (byte)'g', (byte)'r', (byte)'p', (byte)'c' };
var hello = "hello"u8.ToArray();
app.Run(async context =>
{
    var reader = context.Request.BodyReader;
    while (true) { var r = await reader.ReadAsync(); reader.AdvanceTo(r.Buffer.End); if (r.IsCompleted) break; }
    if (context.Request.Path == "/echo.Echo/Unary")
    {
        context.Response.ContentType = "application/grpc";
        context.Response.DeclareTrailer("grpc-status");
        await context.Response.Body.WriteAsync(reply);
        context.Response.AppendTrailer("grpc-status", "0");
        return;
    }
    context.Response.ContentType = "text/plain";
    context.Response.ContentLength = hello.Length;
    await context.Response.Body.WriteAsync(hello);
});
app.Run();
