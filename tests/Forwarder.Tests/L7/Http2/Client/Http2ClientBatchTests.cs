using System.IO.Pipelines;
using Forwarder.L7.Http2.Client;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using static Forwarder.Tests.L7.Http2.Client.Http2ClientKit;

namespace Forwarder.Tests.L7.Http2.Client;

/// <summary><see cref="Http2ClientBatch"/> against nghttpd: the heads of the streams opened while it is open leave in one flush when it closes.</summary>
public sealed class Http2ClientBatchTests : IDisposable
{
    private readonly string _htdocs = Directory.CreateTempSubdirectory("h2c-batch").FullName;

    public Http2ClientBatchTests() => File.WriteAllText(Path.Combine(_htdocs, "small.txt"), "hello h2");

    public void Dispose() => Directory.Delete(_htdocs, recursive: true);

    [Fact]
    public async Task OpenStream_BatchOpen_HeadsHeldUntilCloseThenSentInOneFlush()
    {
        await using var server = await Http2PeerServer.StartNghttpdAsync(_htdocs, string.Empty);
        FlushCountingWriter? output = null;
        await using var pool = new Http2ClientPool(
            async cancellationToken =>
            {
                var inner = await Tcp.ConnectAsync(server.EndPoint, cancellationToken);
                output = new FlushCountingWriter(inner.Transport.Output);
                return new CountedConnection(inner, output);
            },
            new Http2ClientOptions());
        Assert.Equal("hello h2", (await GetAsync(pool, server.EndPoint, "/small.txt")).Text);
        var batch = new Http2ClientBatch();

        batch.Open();
        var before = output!.Flushes;
        var streams = new List<Http2ClientStream>();
        for (var i = 0; i < 5; i++)
        {
            streams.Add(await pool.OpenStreamAsync(Head("GET", "/small.txt", server.EndPoint), endStream: true, batch: batch));
        }

        var held = output.Flushes - before;
        batch.Close();

        Assert.Equal(0, held);
        Assert.Equal(1, pool.ConnectionCount);
        foreach (var stream in streams)
        {
            await using (stream)
            {
                Assert.Equal("hello h2", (await ReadResponseAsync(stream).WaitAsync(TimeSpan.FromSeconds(30))).Text);
            }
        }

        // Closed, the batch holds nothing: a stream opened now is sent at once.
        await using var after = await pool.OpenStreamAsync(Head("GET", "/small.txt", server.EndPoint), endStream: true, batch: batch);
        Assert.Equal("hello h2", (await ReadResponseAsync(after).WaitAsync(TimeSpan.FromSeconds(30))).Text);
    }

    private sealed class FlushCountingWriter(PipeWriter inner) : PipeWriter
    {
        private int _flushes;

        public int Flushes => Volatile.Read(ref _flushes);

        public override void Advance(int bytes) => inner.Advance(bytes);

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _flushes);
            return inner.FlushAsync(cancellationToken);
        }
    }

    private sealed class CountedConnection(ConnectionContext inner, PipeWriter output) : ConnectionContext, IDuplexPipe
    {
        public override string ConnectionId
        {
            get => inner.ConnectionId;
            set => inner.ConnectionId = value;
        }

        public override IFeatureCollection Features => inner.Features;

        public override IDictionary<object, object?> Items
        {
            get => inner.Items;
            set => inner.Items = value;
        }

        public override IDuplexPipe Transport
        {
            get => this;
            set => throw new NotSupportedException();
        }

        public PipeReader Input => inner.Transport.Input;

        public PipeWriter Output => output;

        public override void Abort(ConnectionAbortedException abortReason) => inner.Abort(abortReason);

        public override ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
