namespace Forwarder.Metrics;

/// <summary>Counters for one listener, kept across reloads for as long as the name exists.</summary>
internal sealed class ListenerMetrics(string name)
{
    private long _active;
    private long _total;
    private long _rejected;
    private long _bytesReceived;
    private long _bytesSent;

    public string Name { get; } = name;

    public long Active => Volatile.Read(ref _active);

    public long Total => Volatile.Read(ref _total);

    public long Rejected => Volatile.Read(ref _rejected);

    /// <summary>Bytes read from clients.</summary>
    public long BytesReceived => Volatile.Read(ref _bytesReceived);

    /// <summary>Bytes written to clients.</summary>
    public long BytesSent => Volatile.Read(ref _bytesSent);

    public void ConnectionOpened()
    {
        Interlocked.Increment(ref _active);
        Interlocked.Increment(ref _total);
    }

    public void ConnectionClosed() => Interlocked.Decrement(ref _active);

    public void ConnectionRejected() => Interlocked.Increment(ref _rejected);

    public void AddReceived(long bytes) => Interlocked.Add(ref _bytesReceived, bytes);

    public void AddSent(long bytes) => Interlocked.Add(ref _bytesSent, bytes);
}
