using System.Globalization;
using System.Text.Json;
using BpfJit.Frontend;

namespace BpfJit.Runtime.Scenarios;

/// <summary>A bad scenario file: one line naming the file and the JSON path (<c>s.json: $.sockets[2].bind: invalid address '1.2.3'</c>).</summary>
public sealed class ScenarioException : BpfException
{
    /// <summary>Creates the error.</summary>
    public ScenarioException(string file, string path, string reason) : base($"{file}: {path}: {reason}")
    {
        JsonPath = path;
        Reason = reason;
    }

    /// <summary>The JSON path of the offending element.</summary>
    public string JsonPath { get; }

    /// <summary>What is wrong.</summary>
    public string Reason { get; }
}

/// <summary>A JSON element with its path, and strict typed accessors that fail with that path.</summary>
internal readonly struct JNode(string file, string path, JsonElement element)
{
    public string File { get; } = file;
    public string Path { get; } = path;
    public JsonElement Element { get; } = element;

    public ScenarioException Error(string reason) => new(File, Path, reason);

    public JNode Child(string name, JsonElement e) => new(File, $"{Path}.{name}", e);

    /// <summary>Requires an object whose fields are all in <paramref name="allowed"/>.</summary>
    public JNode Object(params string[] allowed)
    {
        if (Element.ValueKind != JsonValueKind.Object) throw Error($"expected an object, found {Kind}");
        foreach (var p in Element.EnumerateObject())
            if (!allowed.Contains(p.Name)) throw Child(p.Name, p.Value).Error($"unknown field '{p.Name}' (allowed: {string.Join(", ", allowed)})");
        return this;
    }

    public string Kind => Element.ValueKind switch
    {
        JsonValueKind.Object => "an object", JsonValueKind.Array => "an array", JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number", JsonValueKind.True or JsonValueKind.False => "a boolean", _ => "null",
    };

    public JNode? Opt(string name) =>
        Element.ValueKind == JsonValueKind.Object && Element.TryGetProperty(name, out var v) ? Child(name, v) : null;

    public JNode Req(string name) => Opt(name) ?? throw Error($"missing field '{name}'");

    public bool Has(string name) => Opt(name) != null;

    public IEnumerable<JNode> Items()
    {
        if (Element.ValueKind != JsonValueKind.Array) throw Error($"expected an array, found {Kind}");
        int i = 0;
        foreach (var e in Element.EnumerateArray()) yield return new JNode(File, $"{Path}[{i++}]", e);
    }

    public IEnumerable<(string Name, JNode Value)> Fields()
    {
        if (Element.ValueKind != JsonValueKind.Object) throw Error($"expected an object, found {Kind}");
        foreach (var p in Element.EnumerateObject()) yield return (p.Name, Child(p.Name, p.Value));
    }

    public string Str()
    {
        if (Element.ValueKind != JsonValueKind.String) throw Error($"expected a string, found {Kind}");
        return Element.GetString()!;
    }

    public bool Bool()
    {
        if (Element.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw Error($"expected a boolean, found {Kind}");
        return Element.GetBoolean();
    }

    public long Int(long min = long.MinValue, long max = long.MaxValue)
    {
        if (Element.ValueKind != JsonValueKind.Number || !Element.TryGetInt64(out long v)) throw Error($"expected an integer, found {Kind}");
        if (v < min || v > max) throw Error($"{v} is out of range [{min}, {max}]");
        return v;
    }

    public string Choice(params string[] choices)
    {
        string s = Str();
        if (!choices.Contains(s)) throw Error($"'{s}' is not one of {string.Join(", ", choices)}");
        return s;
    }

    /// <summary>
    /// Bytes of exactly <paramref name="size"/>: an integer stored little-endian (it must fit), or a
    /// <c>hex:</c> string of that many bytes.
    /// </summary>
    public byte[] Bytes(int size, string what)
    {
        var bytes = new byte[size];
        if (Element.ValueKind == JsonValueKind.Number)
        {
            if (Element.TryGetInt64(out long v))
            {
                if (size < 8 && (v < 0 ? v < -(1L << (8 * size - 1)) : (ulong)v >> (8 * size) != 0))
                    throw Error($"{what} {v} does not fit in {size} bytes");
                for (int i = 0; i < size; i++) bytes[i] = i < 8 ? (byte)(v >> (8 * i)) : (byte)(v < 0 ? 0xff : 0);
                return bytes;
            }
            if (Element.TryGetUInt64(out ulong u))
            {
                if (size < 8) throw Error($"{what} {u} does not fit in {size} bytes");
                for (int i = 0; i < Math.Min(size, 8); i++) bytes[i] = (byte)(u >> (8 * i));
                return bytes;
            }
            throw Error($"{what} must be an integer");
        }
        if (IsHex)
        {
            byte[] parsed = Hex();
            if (parsed.Length != size) throw Error($"{what} has {parsed.Length} bytes, the map needs {size}");
            return parsed;
        }
        throw Error($"{what} must be an integer or a 'hex:' string, found {Kind}");
    }

    /// <summary>True for a <c>hex:</c> string.</summary>
    internal bool IsHex => Element.ValueKind == JsonValueKind.String && Element.GetString()!.StartsWith("hex:", StringComparison.Ordinal);

    /// <summary>The bytes of a <c>hex:</c> string (spaces and underscores between digits allowed), any length.</summary>
    internal byte[] Hex()
    {
        string text = Element.GetString()!;
        try { return Convert.FromHexString(text[4..].Replace(" ", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal)); }
        catch (FormatException) { throw Error($"invalid hex string '{text}'"); }
    }

    public static string Format(long v) => v.ToString(CultureInfo.InvariantCulture);
}
