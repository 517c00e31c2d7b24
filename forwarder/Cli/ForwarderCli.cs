using System.CommandLine;
using System.Reflection;
using Forwarder.Configuration;
using Forwarder.Runtime;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Cli;

/// <summary>The command line: run the forwarder on a config file (or the embedded quick start), or check a config.</summary>
internal static class ForwarderCli
{
    public const int ExitOk = 0;
    public const int ExitInvalidConfig = 2;
    public const int ExitStartFailed = 3;
    private const string EmbeddedName = "quickstart.yaml";

    public static RootCommand Create()
    {
        var configOption = new Option<FileInfo?>("--config", "-c")
        {
            Description = "YAML config file. Watched: edits (or SIGHUP) reload it without dropping connections. Without it, the embedded quick start runs (examples/quickstart.yaml).",
        };
        var checkOption = new Option<bool>("--check")
        {
            Description = "Validate the config, print every error with its file, line and field, and exit: 0 valid, 2 invalid.",
        };
        var logLevelOption = new Option<LogLevel>("--log-level")
        {
            Description = "Minimum level logged: Trace, Debug, Information, Warning, Error, Critical or None.",
            DefaultValueFactory = _ => LogLevel.Information,
        };
        var logFormatOption = new Option<string>("--log-format")
        {
            Description = "Console log format: text (one line per event) or json (one JSON object per line).",
            DefaultValueFactory = _ => "text",
        };
        logFormatOption.AcceptOnlyFromAmong("text", "json");

        var root = new RootCommand("Forwarder: a userspace L4 node proxy on Kestrel's transport layer.")
        {
            configOption,
            checkOption,
            logLevelOption,
            logFormatOption,
        };
        root.Subcommands.Add(CertCommand());
        root.Subcommands.Add(RelayCommand(logLevelOption, logFormatOption));
        root.Subcommands.Add(IptablesCommand());
        root.SetAction(async (parse, cancellationToken) =>
        {
            var file = parse.GetValue(configOption);
            var logging = new LoggingOptions(parse.GetValue(logLevelOption), parse.GetValue(logFormatOption) == "json");
            return parse.GetValue(checkOption)
                ? Check(file)
                : await RunAsync(file, logging, cancellationToken).ConfigureAwait(false);
        });
        return root;
    }

    /// <summary><c>forwarder cert --out DIR [--relay] NAME...</c>: a mesh CA (made once) and a certificate per node (or relay), for the links between nodes.</summary>
    private static Command CertCommand()
    {
        var outOption = new Option<DirectoryInfo>("--out", "-o")
        {
            Description = "Folder for ca.pem/ca.key (reused when present) and NODE.pem/NODE.key.",
            DefaultValueFactory = _ => new DirectoryInfo("certs"),
        };
        var daysOption = new Option<int>("--days")
        {
            Description = "Validity of new certificates, in days (a node's never outlives the CA's).",
            DefaultValueFactory = _ => 365,
        };
        var relayOption = new Option<bool>("--relay")
        {
            Description = "Issue relay certificates (forwarder://relay/NAME) instead of node certificates (forwarder://node/NAME).",
        };
        var namesArgument = new Argument<string[]>("nodes") { Description = "Node (or relay) names; each becomes the name the other ends expect.", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("cert", "Make a mesh CA and node or relay certificates for mutually authenticated links between nodes.")
        {
            outOption,
            daysOption,
            relayOption,
            namesArgument,
        };
        command.SetAction(parse =>
        {
            var folder = parse.GetValue(outOption)!.FullName;
            var validity = TimeSpan.FromDays(Math.Max(1, parse.GetValue(daysOption)));
            using var authority = Tunnels.MeshAuthority.OpenOrCreate(folder, validity, out var created);
            Console.Out.WriteLine(created ? $"created CA {Path.Combine(folder, "ca.pem")}" : $"using CA {Path.Combine(folder, "ca.pem")}");
            foreach (var name in parse.GetValue(namesArgument) ?? [])
            {
                if (!ConfigLoader.IsValidName(name))
                {
                    Console.Error.WriteLine($"'{name}' is not a valid node name: use letters, digits, - _ .");
                    return ExitInvalidConfig;
                }

                using var certificate = parse.GetValue(relayOption) ? authority.IssueRelay(name, folder, validity) : authority.IssueNode(name, folder, validity);
                Console.Out.WriteLine($"issued {Path.Combine(folder, name + ".pem")} (valid until {certificate.NotAfter.ToUniversalTime():u})");
            }

            return ExitOk;
        });
        return command;
    }

    /// <summary><c>forwarder relay --config relay.yaml</c>: the relay server nodes behind NAT register with.</summary>
    private static Command RelayCommand(Option<LogLevel> logLevelOption, Option<string> logFormatOption)
    {
        var configOption = new Option<FileInfo>("--config", "-c")
        {
            Description = "The relay's YAML config: relay.name, listen, certificate, key, ca, limits; optional admin.listen.",
            Required = true,
        };
        var checkOption = new Option<bool>("--check")
        {
            Description = "Validate the config, print every error with its file, line and field, and exit: 0 valid, 2 invalid.",
        };
        var command = new Command("relay", "Run a relay server: nodes that cannot reach each other register with it and have streams passed between them.")
        {
            configOption,
            checkOption,
            logLevelOption,
            logFormatOption,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            RelayConfig config;
            try
            {
                config = RelayConfigReader.LoadFile(parse.GetValue(configOption)!.FullName);
            }
            catch (ConfigException ex)
            {
                foreach (var error in ex.Errors)
                {
                    await Console.Error.WriteLineAsync(error.ToString()).ConfigureAwait(false);
                }

                return ExitInvalidConfig;
            }

            if (parse.GetValue(checkOption))
            {
                Console.Out.WriteLine($"{config.Source}: OK (relay {config.Name})");
                return ExitOk;
            }

            var logging = new LoggingOptions(parse.GetValue(logLevelOption), parse.GetValue(logFormatOption) == "json");
            using var host = Relay.RelayHost.Build(config, logging);
            try
            {
                await host.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException)
            {
                await Console.Error.WriteLineAsync($"relay {config.Name} cannot listen: {ex.Message}").ConfigureAwait(false);
                return ExitStartFailed;
            }

            await host.WaitForShutdownAsync(CancellationToken.None).ConfigureAwait(false);
            return ExitOk;
        });
        return command;
    }

    /// <summary><c>forwarder iptables --print --config FILE</c>: the interception rules the config installs, without applying them.</summary>
    private static Command IptablesCommand()
    {
        var configOption = new Option<FileInfo>("--config", "-c")
        {
            Description = "The forwarder's YAML config; its intercept section and the vips of its services and http listeners decide the rules.",
            Required = true,
        };
        var printOption = new Option<bool>("--print")
        {
            Description = "Print the rules as iptables-restore input (per address family) and exit; nothing is applied.",
            Required = true,
        };
        var command = new Command("iptables", "Show the iptables rules transparent interception installs (for an init container that owns them: intercept.manageRules false).")
        {
            configOption,
            printOption,
        };
        command.SetAction(parse =>
        {
            if (!TryLoad(parse.GetValue(configOption), out var source))
            {
                return ExitInvalidConfig;
            }

            if (source.Initial.Intercept is not { } intercept)
            {
                Console.Error.WriteLine($"{source.Initial.Source}: there is no intercept section, so no rules are installed");
                return ExitInvalidConfig;
            }

            Console.Out.Write(Interception.IptablesPrinter.Print(intercept, Interception.IptablesPrinter.FileVips(source.Initial), Interception.IptablesPrinter.FileUdpVips(source.Initial)));
            return ExitOk;
        });
        return command;
    }

    private static int Check(FileInfo? file)
    {
        if (!TryLoad(file, out var source))
        {
            return ExitInvalidConfig;
        }

        var config = source.Initial;
        Console.Out.WriteLine($"{config.Source}: OK ({config.Listeners.Count} listeners, {config.Services.Count} services)");
        return ExitOk;
    }

    private static async Task<int> RunAsync(FileInfo? file, LoggingOptions logging, CancellationToken cancellationToken)
    {
        if (!TryLoad(file, out var source))
        {
            return ExitInvalidConfig;
        }

        SocketEngine.Configure(source.Initial.Tcp);
        using var host = ForwarderHost.Build(source, logging);
        try
        {
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ListenerBindException ex)
        {
            await Console.Error.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return ExitStartFailed;
        }

        host.Services.GetRequiredService<MemoryReclaimer>().ReleaseStartupMemory();
        await host.WaitForShutdownAsync(CancellationToken.None).ConfigureAwait(false);
        return ExitOk;
    }

    private static bool TryLoad(FileInfo? file, out ConfigSource source)
    {
        source = null!;
        try
        {
            source = file is null
                ? new ConfigSource(null, ConfigLoader.Parse(ReadEmbedded(), $"<embedded {EmbeddedName}>"))
                : new ConfigSource(file.FullName, ConfigLoader.LoadFile(file.FullName));
            return true;
        }
        catch (ConfigException ex)
        {
            foreach (var error in ex.Errors)
            {
                Console.Error.WriteLine(error);
            }

            return false;
        }
    }

    private static string ReadEmbedded()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(EmbeddedName)
            ?? throw new InvalidOperationException($"The embedded {EmbeddedName} is missing from the build.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
