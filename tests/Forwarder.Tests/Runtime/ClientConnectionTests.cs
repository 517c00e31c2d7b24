using System.IO.Pipelines;
using Forwarder.Runtime;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Tests.Runtime;

/// <summary>
/// Phase deadlines: a passed one cancels the read it guards, off the tracker's thread, and never a
/// later phase's. The connection's end is claimed once, however many paths race to it.
/// </summary>
public sealed class ClientConnectionTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task APassedDeadline_CancelsTheRead_OnAnotherThreadThanTheTrackers()
    {
        // Readers resume inline, as on the transports' pipes.
        var pipe = new Pipe(new PipeOptions(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false));
        var connection = Connection(pipe);
        connection.ArmDeadline(100, pipe.Reader);
        using var resumed = new ManualResetEventSlim();
        var resumedOn = 0;
        var reading = ReadAndReportAsync(pipe.Reader, thread =>
        {
            resumedOn = thread;
            resumed.Set();
        });

        var tracker = Environment.CurrentManagedThreadId;
        connection.CheckDeadline(now: 50);
        Assert.False(resumed.IsSet, "not yet due");
        connection.CheckDeadline(now: 100);

        // The tracker's thread is held here, so an inline resume would have shown as this thread.
        Assert.True(resumed.Wait(Timeout));
        Assert.NotEqual(tracker, resumedOn);
        Assert.True((await reading).IsCanceled);
        Assert.True(connection.DisarmDeadline(), "the session learns the deadline passed");
    }

    [Fact]
    public async Task ADeadlineThatPassed_AfterItsPhaseEnded_CancelsNothing()
    {
        var pipe = new Pipe();
        var connection = Connection(pipe);
        connection.ArmDeadline(100, pipe.Reader);
        connection.DisarmDeadline();
        connection.CheckDeadline(now: 200);

        // A later read, with data, is not cancelled by the old phase's deadline.
        await pipe.Writer.WriteAsync("data"u8.ToArray());
        var result = await pipe.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.False(result.IsCanceled);
        Assert.Equal(4, result.Buffer.Length);
    }

    [Fact]
    public async Task TryEnd_CalledFromRacingPaths_IsTrueForExactlyOne()
    {
        var connection = Connection(new Pipe());
        using var start = new Barrier(4);
        var claims = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            start.SignalAndWait(Timeout);
            return connection.TryEnd();
        })));

        Assert.Single(claims, claimed => claimed);
        Assert.False(connection.TryEnd(), "a later end is a no-op too");
    }

    private static ClientConnection Connection(Pipe pipe)
        => new(new DefaultConnectionContext("test") { Transport = new DuplexPipe(pipe.Reader, pipe.Writer) }, now: 0);

    private sealed record DuplexPipe(PipeReader Input, PipeWriter Output) : IDuplexPipe;

    private static async Task<ReadResult> ReadAndReportAsync(PipeReader reader, Action<int> resumedOn)
    {
        var result = await reader.ReadAsync();
        resumedOn(Environment.CurrentManagedThreadId);
        return result;
    }
}
