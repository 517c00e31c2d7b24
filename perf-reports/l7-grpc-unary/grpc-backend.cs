using Microsoft.AspNetCore.Server.Kestrel.Core;
// A gRPC-shaped unary server: reads the request message, answers one 5-byte-prefixed message and grpc-status trailers.
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(k => k.ListenLocalhost(18090, o => o.Protocols = HttpProtocols.Http2));
var app = builder.Build();
var reply = new byte[] { 0, 0, 0, 0, 12, 10, 10, (byte)'h', (byte)'e', (byte)'l', (byte)'l', (byte)'o', (byte)' ', (byte)'g', (byte)'r', (byte)'p', (byte)'c' };
app.Run(async context =>
{
    var reader = context.Request.BodyReader;
    while (true) { var r = await reader.ReadAsync(); reader.AdvanceTo(r.Buffer.End); if (r.IsCompleted) break; }
    context.Response.ContentType = "application/grpc";
    context.Response.DeclareTrailer("grpc-status");
    await context.Response.Body.WriteAsync(reply);
    context.Response.AppendTrailer("grpc-status", "0");
});
app.Run();
