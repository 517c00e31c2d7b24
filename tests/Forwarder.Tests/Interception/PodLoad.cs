using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Interception;

/// <summary>
/// Steady HTTP/1.1 traffic from a pod to a service address while the test changes the cluster:
/// a few keep-alive clients, each opening a fresh connection now and then (a new intercepted
/// connection), recording which backend answered every request and every request that failed.
/// A stop lets each client finish the request it has in flight.
/// </summary>
internal sealed class PodLoad : IAsyncDisposable
{
    private const int RequestsPerConnection = 20;

    private readonly List<string> _answers = [];
    private readonly List<string> _failures = [];
    private readonly Task[] _clients;
    private volatile bool _stopping;

    private PodLoad(string pod, IPEndPoint service, int clients)
        => _clients = [.. Enumerable.Range(0, clients).Select(_ => Task.Run(() => RunClientAsync(pod, service)))];

    public IReadOnlyList<string> Failures
    {
        get
        {
            lock (_failures)
            {
                return [.. _failures];
            }
        }
    }

    public static PodLoad Start(string pod, IPEndPoint service, int clients) => new(pod, service, clients);

    /// <summary>The backends that answered, in the order the answers arrived.</summary>
    public IReadOnlyList<string> Answers()
    {
        lock (_answers)
        {
            return [.. _answers];
        }
    }

    /// <summary>Lets the requests in flight finish, then returns every answer.</summary>
    public async Task<IReadOnlyList<string>> StopAsync()
    {
        _stopping = true;
        await Task.WhenAll(_clients).WaitAsync(TimeSpan.FromSeconds(60));
        return Answers();
    }

    public async ValueTask DisposeAsync()
    {
        _stopping = true;
        await Task.WhenAll(_clients.Select(c => c.ContinueWith(_ => { }, TaskScheduler.Default)));
    }

    private async Task RunClientAsync(string pod, IPEndPoint service)
    {
        while (!_stopping)
        {
            try
            {
                using var socket = InterceptLab.SocketIn(pod, service.AddressFamily);
                using var timeout = new CancellationTokenSource(SocketClient.ReadTimeout);
                await socket.ConnectAsync(service, timeout.Token);
                var reader = new SocketReader(socket);
                for (var i = 0; i < RequestsPerConnection && !_stopping; i++)
                {
                    Record(_answers, await GetAsync(socket, reader));
                }
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or InvalidDataException)
            {
                Record(_failures, $"{ex.GetType().Name}: {ex.Message}");

                // A failure is the finding; spinning on it would only drown the others.
                await Task.Delay(50);
            }
        }
    }

    private static async Task<string> GetAsync(Socket socket, SocketReader reader)
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: web\r\n\r\n"), SocketFlags.None);
        var head = await reader.ReadHeadAsync().WaitAsync(SocketClient.ReadTimeout) ?? throw new IOException("the connection closed before a response");
        var body = Encoding.UTF8.GetString(await reader.ReadBodyAsync(head) ?? []);
        return head.StartsWith("HTTP/1.1 200 ", StringComparison.Ordinal) ? body : throw new InvalidDataException($"{head.Split("\r\n")[0]}: {body}");
    }

    private static void Record(List<string> list, string item)
    {
        lock (list)
        {
            list.Add(item);
        }
    }
}
