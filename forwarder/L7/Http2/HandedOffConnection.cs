using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;

namespace Forwarder.L7.Http2;

/// <summary>
/// An accepted connection lent to Kestrel: everything passes through, except that Kestrel's
/// dispose only says it is done (the listener that accepted the connection closes it, as it
/// does every other), Kestrel reads and writes through <paramref name="transport"/>, and the
/// front can make the connection look closed to Kestrel (<see cref="EndForKestrel"/>) while it
/// stays open, to say a last word on it.
/// </summary>
internal sealed class HandedOffConnection(ConnectionContext inner, IDuplexPipe transport) : ConnectionContext
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _closed = CancellationTokenSource.CreateLinkedTokenSource(inner.ConnectionClosed);
    private volatile bool _ended;

    /// <summary>Completes when Kestrel has finished with the connection.</summary>
    public Task Done => _done.Task;

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

    public override IDuplexPipe Transport { get; set; } = transport;

    public override CancellationToken ConnectionClosed
    {
        get => _closed.Token;
        set => throw new NotSupportedException("A lent connection's closed token is its own.");
    }

    public override EndPoint? LocalEndPoint
    {
        get => inner.LocalEndPoint;
        set => inner.LocalEndPoint = value;
    }

    public override EndPoint? RemoteEndPoint
    {
        get => inner.RemoteEndPoint;
        set => inner.RemoteEndPoint = value;
    }

    /// <summary>
    /// Kestrel sees the connection closed by the client: it aborts its streams, sends nothing
    /// more (no GOAWAY of its own) and finishes; the socket itself stays open.
    /// </summary>
    public void EndForKestrel()
    {
        _ended = true;
        _closed.Cancel();
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        if (!_ended)
        {
            inner.Abort(abortReason);
        }
    }

    public override ValueTask DisposeAsync()
    {
        _closed.Dispose();
        _done.TrySetResult();
        return ValueTask.CompletedTask;
    }
}
