using System.Net;
using System.Net.Sockets;
using Forwarder.L7;
using Forwarder.L7.Upstream;
using Forwarder.Metrics;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.L7.Upstream;

/// <summary>
/// The exceptions <see cref="SocketsHttpHandler"/> really throws, each provoked on loopback (a
/// closed port, a dialler out of descriptors, a dial that hangs, an upstream that resets the
/// stream or never answers), and whose fault each is taken to be.
/// </summary>
public sealed class Http2FailureClassifierTests
{
    [Fact]
    public async Task Classify_RefusedDial_IsTheEndpointsConnectFailure()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var closedPort = ((IPEndPoint)listener.LocalEndPoint!).Port;
        listener.Close();
        using var client = Client(new SocketsHttpHandler { UseProxy = false });

        var failure = Http2FailureClassifier.Classify(await FailureOf(client, $"http://127.0.0.1:{closedPort}/"), timedOut: false, ClientSide.Fine);

        Assert.Equal(new Http2Failure(Http2FailureKind.Connect, 503, ConnectFailure.Refused), failure);
        Assert.Equal(AttemptFailure.Connect, failure.Attempt);
        Assert.True(failure.UpstreamAtFault);
    }

    [Fact]
    public async Task Classify_DialThisNodeCannotMake_IsLocal_NeverTheEndpointsFault_NorRetried()
    {
        // What the dialler raises when this process is out of file descriptors (EMFILE).
        using var client = Client(new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectCallback = (_, _) => throw new SocketException((int)SocketError.TooManyOpenSockets),
        });

        var failure = Http2FailureClassifier.Classify(await FailureOf(client, "http://127.0.0.1:9/"), timedOut: false, ClientSide.Fine);

        Assert.Equal(new Http2Failure(Http2FailureKind.LocalConnect, 503, ConnectFailure.Local), failure);
        Assert.Null(failure.Attempt);
        Assert.False(failure.UpstreamAtFault);
    }

    [Fact]
    public async Task Classify_HandlersConnectTimeout_IsAConnectFailure_NotTheRoutesTimeout()
    {
        using var client = Client(new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectTimeout = TimeSpan.FromMilliseconds(200),
            ConnectCallback = async (_, cancellationToken) =>
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
                throw new InvalidOperationException("unreachable");
            },
        });

        var failure = Http2FailureClassifier.Classify(await FailureOf(client, "http://127.0.0.1:9/"), timedOut: false, ClientSide.Fine);

        Assert.Equal(new Http2Failure(Http2FailureKind.Connect, 503, ConnectFailure.Timeout), failure);
    }

    [Fact]
    public async Task Classify_StreamResetByTheUpstream_IsAReset()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            context.Abort();
            return Task.CompletedTask;
        });
        using var client = Client(new SocketsHttpHandler { UseProxy = false });

        var failure = Http2FailureClassifier.Classify(await FailureOf(client, $"http://127.0.0.1:{backend.Port}/"), timedOut: false, ClientSide.Fine);

        Assert.Equal(new Http2Failure(Http2FailureKind.Reset, 502), failure);
        Assert.Equal(AttemptFailure.Reset, failure.Attempt);
        Assert.True(failure.UpstreamAtFault);
    }

    [Fact]
    public async Task Classify_NoResponseHeadBeforeTheRoutesTimeout_IsATimeout()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await KestrelTestBackend.StartHttp2Async(_ => release.Task);
        using var client = Client(new SocketsHttpHandler { UseProxy = false });
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
            var ex = await FailureOf(client, $"http://127.0.0.1:{backend.Port}/", timeout.Token);

            Assert.Equal(new Http2Failure(Http2FailureKind.Timeout, 504), Http2FailureClassifier.Classify(ex, timedOut: true, ClientSide.Fine));
        }
        finally
        {
            release.TrySetResult();
        }
    }

    [Theory]
    [InlineData((int)ClientSide.Gone, (int)Http2FailureKind.ClientGone, 0)]
    [InlineData((int)ClientSide.TooLarge, (int)Http2FailureKind.ClientFault, 413)]
    [InlineData((int)ClientSide.Invalid, (int)Http2FailureKind.ClientFault, 400)]
    [InlineData((int)ClientSide.Stalled, (int)Http2FailureKind.ClientFault, 408)]
    public void Classify_WhatTheClientCaused_IsNeverTheEndpointsFault_WhateverTheHandlerThrew(int client, int expected, int status)
    {
        var (side, kind) = ((ClientSide)client, (Http2FailureKind)expected);
        // The handler reports the route's timeout or a broken request stream alike.
        foreach (var ex in new Exception[] { new OperationCanceledException(), new HttpRequestException("send failed", new IOException("body broke off")) })
        {
            var failure = Http2FailureClassifier.Classify(ex, timedOut: true, side);
            Assert.Equal(new Http2Failure(kind, status), failure);
            Assert.False(failure.UpstreamAtFault);
            Assert.Null(failure.Attempt);
        }
    }

    private static HttpClient Client(SocketsHttpHandler handler) => new(handler)
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = Timeout.InfiniteTimeSpan,
    };

    private static async Task<Exception> FailureOf(HttpClient client, string uri, CancellationToken cancellationToken = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(SocketClient.ReadTimeout);
        return await Assert.ThrowsAnyAsync<Exception>(() => client.GetAsync(uri, deadline.Token));
    }
}
