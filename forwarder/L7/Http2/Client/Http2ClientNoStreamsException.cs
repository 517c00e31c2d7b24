namespace Forwarder.L7.Http2.Client;

/// <summary>
/// The upstream allows no streams (SETTINGS_MAX_CONCURRENT_STREAMS 0 on every connection of the
/// pool): the endpoint's doing, like a refused connect, so the request may go to another endpoint
/// and outlier detection hears of it. The connections that said so are retired, so the next open
/// dials afresh and sees the server's SETTINGS of then.
/// </summary>
internal sealed class Http2ClientNoStreamsException() : Exception("The upstream allows no streams (SETTINGS_MAX_CONCURRENT_STREAMS 0).");
