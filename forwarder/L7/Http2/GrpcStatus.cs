using Microsoft.AspNetCore.Http;

namespace Forwarder.L7.Http2;

/// <summary>
/// Errors the proxy itself answers to gRPC calls, as gRPC clients can read them: HTTP 200 with
/// grpc-status and grpc-message in a trailers-only response (no body), instead of a text/plain
/// page the client would report as UNKNOWN.
/// </summary>
internal static class GrpcStatus
{
    public static bool IsGrpc(HttpRequest request)
        => request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase);

    /// <summary>The gRPC code for a status the proxy would otherwise answer (gRPC's HTTP mapping, with timeouts as DEADLINE_EXCEEDED).</summary>
    public static int CodeFor(int status) => status switch
    {
        StatusCodes.Status400BadRequest or StatusCodes.Status431RequestHeaderFieldsTooLarge => 13, // INTERNAL
        StatusCodes.Status404NotFound or StatusCodes.Status501NotImplemented => 12, // UNIMPLEMENTED
        StatusCodes.Status408RequestTimeout or StatusCodes.Status504GatewayTimeout => 4, // DEADLINE_EXCEEDED
        StatusCodes.Status413PayloadTooLarge => 8, // RESOURCE_EXHAUSTED
        StatusCodes.Status429TooManyRequests or StatusCodes.Status502BadGateway or StatusCodes.Status503ServiceUnavailable => 14, // UNAVAILABLE
        _ => 2, // UNKNOWN
    };

    /// <summary>Makes the response a trailers-only gRPC error: Kestrel ends it with one HEADERS frame carrying END_STREAM.</summary>
    public static void Write(HttpResponse response, int status, string message)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = CodeFor(status).ToString(System.Globalization.CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = Uri.EscapeDataString(message);
    }
}
