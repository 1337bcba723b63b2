using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.Scenarios;

/// <summary>One entry of a scenario's <c>lookups</c> list, resolved against the built environment.</summary>
public abstract record ScenarioStep(string JsonPath);

/// <summary>A packet lookup; <see cref="Expect"/> is a socket name, <c>refused</c>, <c>none</c>, or null.</summary>
public sealed record LookupStep(string JsonPath, Packet Packet, string? Expect) : ScenarioStep(JsonPath);

/// <summary>A BPF_PROG_TEST_RUN of one program on the context a packet gives (ingress_ifindex 0).</summary>
public sealed record TestRunStep(string JsonPath, string Program, Packet Packet, string? Expect, uint? Retval, string? Error) : ScenarioStep(JsonPath);

/// <summary>A userspace map update; <see cref="Socket"/> names the socket for socket maps.</summary>
public sealed record UpdateStep(string JsonPath, string Map, byte[] Key, byte[]? Value, string? Socket, ulong Flags, string? ExpectError) : ScenarioStep(JsonPath);

/// <summary>A userspace map delete.</summary>
public sealed record DeleteStep(string JsonPath, string Map, byte[] Key, string? ExpectError) : ScenarioStep(JsonPath);

/// <summary>
/// A map value check: the element must hold <see cref="Value"/> (per-CPU maps: the element-wise sum
/// of the CPUs' slots in u64 words), name <see cref="Socket"/> (socket maps), or be absent.
/// </summary>
public sealed record CheckStep(string JsonPath, string Map, byte[] Key, byte[]? Value, string? Socket, bool Absent) : ScenarioStep(JsonPath);

/// <summary>Closes a socket.</summary>
public sealed record CloseStep(string JsonPath, string Socket) : ScenarioStep(JsonPath);

/// <summary>Attaches a program as a new link at the end of the run order.</summary>
public sealed record AttachStep(string JsonPath, string Program) : ScenarioStep(JsonPath);

/// <summary>Detaches the link at a position of the current run order.</summary>
public sealed record DetachStep(string JsonPath, int Index) : ScenarioStep(JsonPath);

/// <summary>Swaps the program of the link at a position (BPF_LINK_UPDATE).</summary>
public sealed record ReplaceStep(string JsonPath, int Index, string Program) : ScenarioStep(JsonPath);

/// <summary>Checks BPF_PROG_QUERY: the attached programs, by name, in run order.</summary>
public sealed record QueryStep(string JsonPath, string[] Programs) : ScenarioStep(JsonPath);

/// <summary>Everything a scenario file sets up, live: namespace, maps, programs, sockets, links.</summary>
public sealed class ScenarioEnvironment : IDisposable
{
    /// <summary>The scenario file (for messages).</summary>
    public required string File { get; init; }

    /// <summary>The engine programs run on.</summary>
    public required IBpfEngine Engine { get; init; }

    /// <summary>The namespace holding sockets and the hook.</summary>
    public NetNamespace Namespace { get; } = new();

    /// <summary>Maps by name.</summary>
    public Dictionary<string, BpfMap> Maps { get; } = new(StringComparer.Ordinal);

    /// <summary>Programs by name.</summary>
    public Dictionary<string, SkLookupProgram> Programs { get; } = new(StringComparer.Ordinal);

    /// <summary>The scenario's object made live, or null without one: its maps and programs are also in <see cref="Maps"/> and <see cref="Programs"/>.</summary>
    public Loading.BpfCollection? Collection { get; internal set; }

    /// <summary>Sockets by name.</summary>
    public Dictionary<string, Sock> Sockets { get; } = new(StringComparer.Ordinal);

    /// <summary>The steps to run, in file order.</summary>
    public List<ScenarioStep> Steps { get; } = [];

    /// <summary>The name of a socket, for output.</summary>
    public string NameOf(Sock s) => s.Name ?? $"#{s.Cookie}";

    /// <inheritdoc />
    public void Dispose()
    {
        Namespace.Dispose();
        foreach (var s in Sockets.Values) s.Close();
        foreach (var m in Maps.Values) m.Dispose();
        Collection?.Dispose();
        foreach (var c in InlineCollections) c.Dispose();
    }

    /// <summary>The collections of the scenario's inline programs (one each, over <see cref="Maps"/>).</summary>
    internal List<Loading.BpfCollection> InlineCollections { get; } = [];
}
