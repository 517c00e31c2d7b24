using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Forwarder.Transports.Quic;

// Usage (Release build):
//   bulk <MiB>                        our client -> our listener, one stream, loopback
//   rr <requests> <bytes>             one connection, one stream, request/response ping-pong
//   gobulk <port> <ca.pem> <MiB>      our client -> the quic-go echo peer (tests/.../quicgo/echo.go), one stream echoed
// Each prints one line: throughput, CPU seconds per GB (both ends when both are ours), bytes allocated per MiB.
var mode = args[0];
using var pki = BenchPki.Create();
var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
var alloc0 = GC.GetTotalAllocatedBytes(precise: true);
var clock = Stopwatch.StartNew();
long bytes;
string extra = "";
switch (mode)
{
    case "bulk":
        bytes = await Bulk(pki, long.Parse(args[1], CultureInfo.InvariantCulture) << 20);
        break;
    case "rr":
        (bytes, extra) = await RequestResponse(pki, int.Parse(args[1], CultureInfo.InvariantCulture), int.Parse(args[2], CultureInfo.InvariantCulture));
        break;
    case "gobulk":
        bytes = await GoBulk(int.Parse(args[1], CultureInfo.InvariantCulture), args[2], long.Parse(args[3], CultureInfo.InvariantCulture) << 20);
        break;
    default:
        throw new ArgumentException($"unknown mode {mode}");
}

var seconds = clock.Elapsed.TotalSeconds;
var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
var alloc = GC.GetTotalAllocatedBytes(precise: true) - alloc0;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"{mode} bytes={bytes} seconds={seconds:F3} MBps={bytes / seconds / 1e6:F1} cpu_s={cpu:F2} cpu_s_per_GB={cpu / (bytes / 1e9):F2} alloc_per_MiB={alloc / (bytes / 1048576.0):F0}{extra}"));

static QuicServerOptions Server(BenchPki pki) => new() { Alpn = "bench", CertificateFile = pki.CertificateFile, KeyFile = pki.KeyFile };

static QuicClientOptions Client(string ca) => new() { Alpn = "bench", ServerName = BenchPki.Name, CaFile = ca };

static async Task<long> Bulk(BenchPki pki, long total)
{
    await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), Server(pki));
    await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, Client(pki.CaFile));
    await using var server = await listener.AcceptAsync();
    var stream = await client.OpenStreamAsync();
    var send = Task.Run(async () =>
    {
        var block = new byte[64 * 1024];
        for (long sent = 0; sent < total; sent += block.Length)
        {
            await stream.WriteAsync(block);
        }

        stream.CompleteWrites();
    });
    var accepted = await server.AcceptStreamAsync();
    var buffer = new byte[64 * 1024];
    long received = 0;
    for (int n; (n = await accepted.ReadAsync(buffer)) > 0;)
    {
        received += n;
    }

    await send;
    return received;
}

static async Task<(long, string)> RequestResponse(BenchPki pki, int requests, int size)
{
    await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), Server(pki));
    await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, Client(pki.CaFile));
    await using var server = await listener.AcceptAsync();
    var stream = await client.OpenStreamAsync();
    var request = new byte[size];
    await stream.WriteAsync(request); // the peer sees a stream only once it carries data
    var echo = Task.Run(async () =>
    {
        var accepted = await server.AcceptStreamAsync();
        var buffer = new byte[size];
        for (int n; (n = await ReadFull(accepted, buffer)) > 0;)
        {
            await accepted.WriteAsync(buffer.AsMemory(0, n));
        }

        accepted.CompleteWrites();
    });
    var response = new byte[size];
    var latencies = new double[requests];
    for (var i = 0; i < requests; i++)
    {
        var start = Stopwatch.GetTimestamp();
        if (i > 0)
        {
            await stream.WriteAsync(request);
        }

        await ReadFull(stream, response);
        latencies[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    }

    stream.CompleteWrites();
    await echo;
    Array.Sort(latencies);
    return ((long)requests * size * 2, string.Create(CultureInfo.InvariantCulture,
        $" rps={requests / latencies.Sum() * 1e6:F0} p50_us={latencies[requests / 2]:F0} p99_us={latencies[requests * 99 / 100]:F0}"));
}

static async Task<long> GoBulk(int port, string ca, long total)
{
    await using var client = await QuicConnection.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), Client(ca) with { Alpn = "forwarder-test" });
    var stream = await client.OpenStreamAsync();
    var send = Task.Run(async () =>
    {
        var block = new byte[64 * 1024];
        for (long sent = 0; sent < total; sent += block.Length)
        {
            await stream.WriteAsync(block);
        }

        stream.CompleteWrites();
    });
    var buffer = new byte[64 * 1024];
    long received = 0;
    for (int n; (n = await stream.ReadAsync(buffer)) > 0;)
    {
        received += n;
    }

    await send;
    return received * 2;
}

static async Task<int> ReadFull(QuicStream stream, byte[] buffer)
{
    var filled = 0;
    while (filled < buffer.Length)
    {
        var n = await stream.ReadAsync(buffer.AsMemory(filled));
        if (n == 0)
        {
            break;
        }

        filled += n;
    }

    return filled;
}

/// <summary>A throwaway CA-less self-signed server certificate for <see cref="Name"/>, written as PEM for GnuTLS.</summary>
internal sealed class BenchPki : IDisposable
{
    public const string Name = "bench.quic.test";
    private readonly string _directory = Directory.CreateTempSubdirectory("quic-bench-").FullName;

    public string CertificateFile => Path.Combine(_directory, "cert.pem");
    public string KeyFile => Path.Combine(_directory, "key.pem");
    public string CaFile => CertificateFile;

    public static BenchPki Create()
    {
        var pki = new BenchPki();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={Name}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(Name);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(pki.CertificateFile, certificate.ExportCertificatePem());
        File.WriteAllText(pki.KeyFile, key.ExportPkcs8PrivateKeyPem());
        return pki;
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
