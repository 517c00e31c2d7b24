using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Forwarder.Admin;

/// <summary>
/// Requests each admin path once over loopback as the endpoint starts, so Kestrel's HTTP code, the
/// routes and the writers are loaded and initialized before any scrape, which may come when the
/// process is at its descriptor limit.
/// </summary>
internal static class AdminWarmup
{
    private static readonly string[] Paths = ["/healthz", "/readyz", "/metrics", "/config"];

    /// <summary>Returns the first failure, or null when every path answered.</summary>
    public static async Task<Exception?> RunAsync(IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        var buffer = new byte[16 * 1024];
        foreach (var path in Paths)
        {
            try
            {
                using var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(endPoint, timeout.Token).ConfigureAwait(false);
                await socket.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: warmup\r\nConnection: close\r\n\r\n"), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                while (await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token).ConfigureAwait(false) > 0)
                {
                }
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                return ex;
            }
        }

        return null;
    }
}
