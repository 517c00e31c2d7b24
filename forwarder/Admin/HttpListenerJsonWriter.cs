using System.Text.Json;
using Forwarder.Configuration;
using Forwarder.L7.Routing;

namespace Forwarder.Admin;

/// <summary>Renders an http listener's effective settings and routes for /config, spelled as the config file spells them.</summary>
internal static class HttpListenerJsonWriter
{
    private static readonly (RetryOn Flag, string Name)[] RetryOnNames =
        [(RetryOn.Reset, "reset"), (RetryOn.Timeout, "timeout"), (RetryOn.Status502, "502"), (RetryOn.Status503, "503"), (RetryOn.Status504, "504"), (RetryOn.Status5xx, "5xx")];

    public static void Write(Utf8JsonWriter json, HttpListenerConfig http)
    {
        json.WriteStartObject("http");
        json.WriteBoolean("http2", http.Http2);
        json.WriteString("headerTimeout", ValueParsers.FormatDuration(http.HeaderTimeout));
        json.WriteString("keepAliveTimeout", ValueParsers.FormatDuration(http.KeepAliveTimeout));
        json.WriteString("bodyTimeout", ValueParsers.FormatDuration(http.RequestBodyTimeout));
        if (http.MaxBodySize is { } maxBodySize)
        {
            json.WriteNumber("maxBodySize", maxBodySize);
        }
        else
        {
            json.WriteNull("maxBodySize");
        }

        json.WriteString("pathNormalization", http.PathNormalization switch
        {
            PathNormalization.Off => "off",
            PathNormalization.Full => "full",
            _ => "dot-segments",
        });
        json.WriteNumber("maxRequestLine", http.Limits.MaxRequestLine);
        json.WriteNumber("maxHeaderBytes", http.Limits.MaxHeadBytes);
        json.WriteNumber("maxHeaders", http.Limits.MaxHeaders);
        json.WriteString("accessLog", http.AccessLog);
        json.WriteEndObject();

        json.WriteStartArray("routes");
        foreach (var route in http.Routes)
        {
            json.WriteStartObject();
            json.WriteString("name", route.Name);
            json.WriteStartArray("split");
            foreach (var backend in route.Backends)
            {
                json.WriteStartObject();
                json.WriteString("service", backend.Service);
                json.WriteNumber("weight", backend.Weight);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteString("timeout", ValueParsers.FormatDuration(route.Timeout));
            json.WriteBoolean("websocket", route.WebSocket);
            json.WriteStartObject("retries");
            json.WriteNumber("attempts", route.Retry.Attempts);
            json.WriteStartArray("on");
            foreach (var (flag, name) in RetryOnNames)
            {
                if ((route.Retry.On & flag) != 0)
                {
                    json.WriteStringValue(name);
                }
            }

            json.WriteEndArray();
            json.WriteNumber("budgetPercent", route.Retry.BudgetPercent);
            json.WriteNumber("minConcurrent", route.Retry.MinConcurrent);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        json.WriteEndArray();
    }
}
