namespace Forwarder.L7.Http2.Server;

/// <summary>
/// What each request stream of an <see cref="Http2ServerConnection"/> is given to, once its
/// header block has arrived whole and valid: read the request from the stream, write the
/// response to it. Called on the connection's reading thread: work that waits should await, not
/// block. The stream is the connection's again once the returned task completes.
/// </summary>
internal interface IHttp2StreamHandler
{
    ValueTask HandleAsync(Http2ServerStream stream);

    /// <summary>
    /// The reader starts applying one read's frames: the streams it hands over until
    /// <see cref="ReadEnded"/> run their handlers (up to their first wait) within it, so what
    /// they send elsewhere may leave together at its end.
    /// </summary>
    void ReadStarted()
    {
    }

    /// <summary>
    /// The connection answered a request itself with <paramref name="status"/> (431: header list
    /// too large; 400: a field value with a control character), the handler never seeing it.
    /// Called on the reading thread; <paramref name="reason"/> holds none of the client's data.
    /// </summary>
    void Refused(int status, string reason)
    {
    }

    /// <summary>The reader is done with the read <see cref="ReadStarted"/> announced (also when it failed).</summary>
    void ReadEnded()
    {
    }
}
