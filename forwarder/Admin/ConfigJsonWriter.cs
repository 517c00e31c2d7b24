using System.Text.Json;
using Forwarder.Configuration;
using Forwarder.Runtime;

namespace Forwarder.Admin;

/// <summary>Renders the effective config, the bound addresses and the last reload's outcome as JSON for /config.</summary>
internal static class ConfigJsonWriter
{
    public static void Write(Utf8JsonWriter json, ProxyRuntime runtime)
    {
        var config = runtime.Config;
        var status = runtime.Status;
        var bound = runtime.BoundEndPoints;
        json.WriteStartObject();
        json.WriteString("source", config.Source);
        json.WriteBoolean("ready", runtime.Ready);
        json.WriteBoolean("shuttingDown", runtime.ShuttingDown);
        json.WriteBoolean("draining", runtime.Draining);

        json.WriteStartObject("reload");
        json.WriteString("status", status.Succeeded ? "ok" : "failed");
        json.WriteString("attemptedAt", status.AttemptedAt);
        if (status.AppliedAt is { } applied)
        {
            json.WriteString("appliedAt", applied);
        }

        WriteStrings(json, "errors", status.Errors);
        WriteStrings(json, "warnings", status.Warnings);
        json.WriteEndObject();

        json.WriteStartObject("config");
        if (config.Admin is { } admin)
        {
            json.WriteStartObject("admin");
            json.WriteString("listen", admin.Listen);
            json.WriteEndObject();
        }

        json.WriteString("drainTimeout", ValueParsers.FormatDuration(config.DrainTimeout));
        json.WriteString("shutdownDelay", ValueParsers.FormatDuration(config.ShutdownDelay));
        json.WriteStartObject("tcp");
        json.WriteString("engine", config.Tcp.Engine.ToString().ToLowerInvariant());
        json.WriteBoolean("noDelay", config.Tcp.NoDelay);
        WriteOptional(json, "receiveBufferSize", config.Tcp.ReceiveBufferSize);
        WriteOptional(json, "sendBufferSize", config.Tcp.SendBufferSize);
        json.WriteNumber("maxBufferedBytes", config.Tcp.MaxBufferedBytes);
        json.WriteNumber("blockSize", config.Tcp.BlockSize);
        json.WriteBoolean("directSend", config.Tcp.DirectSend);
        json.WriteBoolean("waitForData", config.Tcp.WaitForData);
        json.WriteBoolean("inlineCompletions", config.Tcp.InlineCompletions);
        WriteOptional(json, "ioThreads", config.Tcp.IoThreads);
        json.WriteEndObject();

        json.WriteStartArray("listeners");
        foreach (var listener in config.Listeners)
        {
            json.WriteStartObject();
            json.WriteString("name", listener.Name);
            json.WriteString("listen", listener.Listen);
            if (bound.TryGetValue(listener.Name, out var endPoint))
            {
                json.WriteString("boundAddress", endPoint.ToString());
            }

            json.WriteString("protocol", listener.Protocol.ToString().ToLowerInvariant());
            if (listener.Service is not null)
            {
                json.WriteString("service", listener.Service);
            }

            if (listener.Udp is { } udp)
            {
                json.WriteStartObject("udp");
                json.WriteString("idleTimeout", ValueParsers.FormatDuration(udp.IdleTimeout));
                json.WriteNumber("maxSessions", udp.MaxSessions);
                json.WriteEndObject();
            }
            else
            {
                json.WriteNumber("maxConnections", listener.MaxConnections);
            }

            if (listener.Http is { } http)
            {
                HttpListenerJsonWriter.Write(json, http);
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();

        json.WriteStartObject("services");
        var models = runtime.Services;
        foreach (var service in config.Services.Values.OrderBy(s => s.Name, StringComparer.Ordinal))
        {
            json.WritePropertyName(service.Name);
            ServiceJsonWriter.Write(json, service, models.GetValueOrDefault(service.Name));
        }

        json.WriteEndObject();
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void WriteStrings(Utf8JsonWriter json, string name, IReadOnlyList<string> values)
    {
        json.WriteStartArray(name);
        foreach (var value in values)
        {
            json.WriteStringValue(value);
        }

        json.WriteEndArray();
    }

    private static void WriteOptional(Utf8JsonWriter json, string name, int? value)
    {
        if (value is { } number)
        {
            json.WriteNumber(name, number);
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
