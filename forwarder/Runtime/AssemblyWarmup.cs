using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.CompilerServices;

namespace Forwarder.Runtime;

/// <summary>
/// Loads, at start, every assembly the executable references (transitively). A JIT-compiled
/// process otherwise opens each one on first use, which may come at the descriptor limit: the
/// load fails, and if it fails inside a static constructor, that type is broken for good. Native
/// AOT builds have no assemblies to load.
/// </summary>
internal static class AssemblyWarmup
{
    /// <returns>How many assemblies were loaded or already there.</returns>
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Runs only where code is JIT-compiled and nothing was trimmed; a native build returns before reading references.")]
    public static int LoadAll()
    {
        if (!RuntimeFeature.IsDynamicCodeSupported || Assembly.GetEntryAssembly() is not { } entry)
        {
            return 0;
        }

        var seen = new HashSet<string>(StringComparer.Ordinal) { entry.FullName ?? string.Empty };
        var pending = new Stack<Assembly>([entry]);
        while (pending.TryPop(out var assembly))
        {
            foreach (var reference in assembly.GetReferencedAssemblies())
            {
                if (!seen.Add(reference.FullName))
                {
                    continue;
                }

                try
                {
                    pending.Push(Assembly.Load(reference));
                }
                catch (Exception ex) when (ex is FileNotFoundException or FileLoadException or BadImageFormatException)
                {
                    // A reference never used on this platform (a Windows-only facade): it would fail on first use too.
                }
            }
        }

        return seen.Count;
    }
}
