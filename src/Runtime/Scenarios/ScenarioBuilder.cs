using System.Buffers.Binary;
using System.Text.Json;
using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Loading;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.Scenarios;

/// <summary>
/// Reads a scenario file and builds its environment: maps (from the object and/or
/// <c>map_definitions</c>), programs (object programs bound to those maps, or inline
/// <c>asm</c> where <c>map:NAME</c> stands for a map's handle), sockets, reuseport group
/// selectors, initial map contents, links, and the resolved steps. Every problem is a
/// <see cref="ScenarioException"/> naming the JSON path; nothing runs before the whole file is valid.
/// </summary>
public sealed partial class ScenarioBuilder
{
    static readonly string[] s_rootFields =
        ["description", "object", "map_definitions", "programs", "attach", "sockets", "reuseport_groups", "maps", "lookups"];

    readonly string _file;
    readonly ScenarioEnvironment _env;
    readonly Dictionary<string, ProgramSpec> _objectPrograms = new(StringComparer.Ordinal);
    readonly Dictionary<string, ProgramSpec> _reuseportPrograms = new(StringComparer.Ordinal);
    readonly Dictionary<string, JNode> _inlinePrograms = new(StringComparer.Ordinal);
    BpfCollection? _collection;

    ScenarioBuilder(string file, IBpfEngine engine)
    {
        _file = file;
        _env = new ScenarioEnvironment { File = file, Engine = engine };
    }

    /// <summary>Builds the environment of <paramref name="file"/> for <paramref name="engine"/>.</summary>
    public static ScenarioEnvironment Build(string file, IBpfEngine engine)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(engine);
        string text = InputFile.ReadText(file, InputFile.MaxTextBytes, "scenario");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new ScenarioException(file, "$", $"invalid JSON: {e.Message}");
        }
        var builder = new ScenarioBuilder(file, engine);
        try
        {
            using (doc) builder.BuildAll(new JNode(file, "$", doc.RootElement));
            return builder._env;
        }
        catch
        {
            builder._env.Dispose();
            throw;
        }
    }

    void BuildAll(JNode root)
    {
        root.Object(s_rootFields);
        if (root.Opt("description") is { } d) d.Str();
        var definitions = new Dictionary<string, (JNode Node, MapDefinition Def)>(StringComparer.Ordinal);
        if (root.Opt("map_definitions") is { } defs)
            foreach (var (name, node) in defs.Fields()) definitions[name] = (node, ParseMapDefinition(name, node));
        if (root.Opt("object") is { } obj) LoadObject(obj, definitions);
        foreach (var (name, (node, def)) in definitions)
        {
            if (_env.Maps.ContainsKey(name)) continue;
            _env.Maps[name] = CreateMap(node, def);
        }
        if (root.Opt("programs") is { } programs)
        {
            foreach (var (name, node) in programs.Fields())
            {
                node.Object("asm");
                if (_objectPrograms.ContainsKey(name)) throw node.Error($"program '{name}' is also in the object");
                _inlinePrograms[name] = node;
            }
        }
        if (root.Opt("sockets") is { } sockets) BuildSockets(sockets);
        if (root.Opt("reuseport_groups") is { } groups) BuildGroups(groups);
        if (root.Opt("maps") is { } maps) FillMaps(maps);
        if (root.Opt("attach") is { } attach)
            foreach (var item in attach.Items()) _env.Namespace.SkLookup.Attach(Program(item));
        if (root.Opt("lookups") is { } lookups)
            foreach (var item in lookups.Items()) _env.Steps.Add(ParseStep(item));
    }

    // ---- maps ------------------------------------------------------------------------------------

    static MapDefinition ParseMapDefinition(string name, JNode node)
    {
        node.Object("type", "key_size", "value_size", "max_entries", "flags");
        var t = node.Req("type");
        MapType type;
        if (t.Element.ValueKind == JsonValueKind.Number) type = (MapType)t.Int(0, 100);
        else
        {
            string wanted = t.Str().Replace("_", "", StringComparison.Ordinal);
            var match = Enum.GetValues<MapType>().Where(v => v.ToString().Equals(wanted, StringComparison.OrdinalIgnoreCase)).ToArray();
            if (match.Length != 1) throw t.Error($"unknown map type '{t.Str()}'");
            type = match[0];
        }
        // The sizes are BPF_MAP_CREATE's u32s: any of them reaches MapFactory, which answers as the kernel does.
        return new MapDefinition(name, type,
            unchecked((int)(uint)(node.Opt("key_size")?.Int(0, uint.MaxValue) ?? 0)),
            unchecked((int)(uint)(node.Opt("value_size")?.Int(0, uint.MaxValue) ?? 0)),
            unchecked((int)(uint)(node.Opt("max_entries")?.Int(0, uint.MaxValue) ?? 0)),
            (uint)(node.Opt("flags")?.Int(0, uint.MaxValue) ?? 0));
    }

    static BpfMap CreateMap(JNode where, MapDefinition def)
    {
        try { return MapFactory.Create(def); }
        catch (MapCreateException e) { throw where.Error(e.Message); }
    }

    // The object loads through the runtime's one collection loader: its maps made live (map_definitions may resize
    // one), PROG_ARRAY slots filled; the programs the scenario names load on demand from the same collection.
    void LoadObject(JNode node, Dictionary<string, (JNode Node, MapDefinition Def)> definitions)
    {
        string rel = node.Str();
        string path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(_file)) ?? ".", rel);
        CollectionSpec spec;
        try { spec = ObjectFile.Load(path); }
        catch (BpfException e) { throw node.Error(e.Message); }
        try
        {
            _collection = BpfCollection.Load(spec, new CollectionOptions
            {
                Engine = _env.Engine,
                Programs = [],
                MapDefinition = (m, def) => Patched(m, def, definitions),
            });
        }
        catch (CollectionLoadException e) when (e.ProgramName != null) { throw node.Error(ProgramError(e)); }
        catch (CollectionLoadException e) when (e.MapName != null)
        {
            // A map that cannot be created is the fault of the definition that patched it, else of the object.
            var where = e.InnerException is MapCreateException && definitions.TryGetValue(e.MapName, out var over) ? over.Node : node;
            throw where.Error(e.InnerException is MapCreateException create ? create.Message : $"map {e.MapName}: {e.Reason}");
        }
        catch (CollectionLoadException e) { throw node.Error(e.Reason); }
        _env.Collection = _collection;
        foreach (var map in _collection.Maps) _env.Maps[map.Name] = map;
        foreach (var (name, loaded) in _collection.Programs) _env.Programs[name] = loaded.Program!;
        foreach (var p in spec.Programs)
        {
            if (p.IsSupported && p.Type == Frontend.Elf.ProgramType.SkLookup) _objectPrograms[p.Name] = p;
            if (p.IsSupported && p.Type == Frontend.Elf.ProgramType.SkReuseport) _reuseportPrograms[p.Name] = p;
        }
    }

    // map_definitions may patch an object map (tubular's zero-sized 'destinations').
    static MapDefinition Patched(MapSpec m, MapDefinition def, Dictionary<string, (JNode Node, MapDefinition Def)> definitions)
    {
        if (!definitions.TryGetValue(m.Name, out var over)) return def;
        // A global-data map (.data, .rodata, .bss) is the object's own ARRAY of one value: libbpf lets a loader
        // resize its value, never change its type or key.
        if (m.InitialValue != null && (over.Def.Type != MapType.Array || over.Def.KeySize != 4 || over.Def.MaxEntries != 1))
            throw over.Node.Error($"map {m.Name} is the object's global data (an ARRAY of one value with key_size 4): map_definitions may change its value_size only");
        return over.Def;
    }

    // A program's failure as the scenario words it: its name, then the cause (a verifier rejection's last lines).
    static string ProgramError(CollectionLoadException e) =>
        $"program '{e.ProgramName}': {(e.Step is CollectionLoadStep.Verify or CollectionLoadStep.Bind ? Summary(e.InnerException!.Message) : e.InnerException!.Message)}";

    // ---- programs --------------------------------------------------------------------------------

    // A verifier rejection carries the whole log; the scenario error keeps its last lines (the error and its source line).
    static string Summary(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return lines.Length <= 3 ? message : string.Join(" | ", lines[^3..]);
    }

    [GeneratedRegex(@"map:([A-Za-z_.][A-Za-z0-9_.]*)")]
    private static partial Regex MapToken();

    // Every ld_imm64 of a map's handle becomes a BPF_PSEUDO_MAP_IDX reference to that map (handles are
    // native addresses, so a plain constant cannot collide with one by accident).
    static Instruction[] MapReferences(Instruction[] code, List<BpfMap> maps)
    {
        var copy = (Instruction[])code.Clone();
        for (int i = 0; i + 1 < copy.Length; i++)
        {
            if (!copy[i].IsLdImm64) continue;
            if (copy[i].Src == (byte)Ld64Source.Imm)
            {
                ulong value = (uint)copy[i].Imm | ((ulong)(uint)copy[i + 1].Imm << 32);
                int index = maps.FindIndex(m => m.Handle == value);
                if (index >= 0)
                {
                    copy[i] = copy[i] with { Src = (byte)Ld64Source.MapIdx, Imm = index };
                    copy[i + 1] = copy[i + 1] with { Imm = 0 };
                }
            }
            i++;
        }
        return copy;
    }

    SkLookupProgram Program(JNode nameNode) => Program(nameNode.Str(), nameNode);

    // nameNode is where errors point: the name's own node, or the object's for a program a PROG_ARRAY slot names.
    SkLookupProgram Program(string name, JNode nameNode)
    {
        if (_env.Programs.TryGetValue(name, out var done)) return done;
        if (_objectPrograms.ContainsKey(name))
        {
            // Verified against the live maps it is bound to, prepared on the scenario's engine.
            try
            {
                var program = _collection!.Program(name);
                _env.Programs[name] = program;
                return program;
            }
            catch (CollectionLoadException e) { throw nameNode.Error(ProgramError(e)); }
        }
        if (_inlinePrograms.TryGetValue(name, out var inline))
        {
            var asmNode = inline.Req("asm");
            string source = asmNode.Element.ValueKind == JsonValueKind.Array
                ? string.Join('\n', asmNode.Items().Select(l => l.Str()))
                : asmNode.Str();
            source = MapToken().Replace(source, m => _env.Maps.TryGetValue(m.Groups[1].Value, out var map)
                ? $"0x{map.Handle:x}"
                : throw asmNode.Error($"unknown map '{m.Groups[1].Value}'"));
            Instruction[] assembled;
            try { assembled = Assembler.Assemble(source); }
            catch (BpfException e) { throw asmNode.Error(e.Message); }
            // Inline programs are verified like object programs: a scenario file is input, and its code
            // runs through raw pointers. map:NAME became the map's handle; for the verifier it is a
            // symbolic reference to that map again.
            var maps = _env.Maps.ToList();
            // An inline program has no license section; it is loaded as "GPL", as the kernel oracle loads assembled code.
            var symbolic = new ProgramSpec(name, "sk_lookup", Frontend.Elf.ProgramType.SkLookup, AttachType.SkLookup, MapReferences(assembled, [.. maps.Select(m => m.Value)]))
            {
                License = "GPL",
            };
            // A collection of one program over the scenario's live maps (each one a replacement: nothing is created),
            // loaded by the same loader as an object's programs.
            var spec = new CollectionSpec
            {
                FileName = _file,
                Programs = new ProgramSpecList([symbolic]),
                Maps = new MapSpecList(maps.Select(m => new MapSpec(m.Key, (Frontend.Elf.MapType)(int)m.Value.Type,
                    (uint)m.Value.KeySize, (uint)m.Value.ValueSize, (uint)m.Value.MaxEntries))),
            };
            try
            {
                var inlineCollection = BpfCollection.Load(spec, new CollectionOptions { Engine = _env.Engine, MapReplacements = _env.Maps });
                _env.InlineCollections.Add(inlineCollection);
                var program = inlineCollection.Program(name);
                _env.Programs[name] = program;
                return program;
            }
            catch (CollectionLoadException e)
            {
                // The verifier's and the binder's errors point at the code; the engine's at the program's name.
                throw (e.Step is CollectionLoadStep.Verify or CollectionLoadStep.Bind ? asmNode : nameNode).Error(ProgramError(e));
            }
        }
        throw nameNode.Error($"unknown program '{name}'");
    }

    // ---- sockets ---------------------------------------------------------------------------------

    static InetEndPoint EndPoint(JNode node)
    {
        string text = node.Str();
        if (!InetEndPoint.TryParse(text, out var ep)) throw node.Error($"invalid address '{text}'");
        return ep;
    }

    static SocketProtocol Proto(JNode node) => node.Choice("tcp", "udp") == "tcp" ? SocketProtocol.Tcp : SocketProtocol.Udp;

    void BuildSockets(JNode sockets)
    {
        var labels = new List<(string Label, JNode Node, Sock Socket)>();
        foreach (var node in sockets.Items())
        {
            node.Object("name", "proto", "family", "bind", "state", "reuseport", "v6only", "peer", "mark", "priority", "device");
            var nameNode = node.Req("name");
            string name = nameNode.Str();
            if (name is "refused" or "none" || name.Length == 0) throw nameNode.Error($"'{name}' cannot name a socket");
            if (_env.Sockets.ContainsKey(name)) throw nameNode.Error($"duplicate socket name '{name}'");
            var proto = Proto(node.Req("proto"));
            InetEndPoint? bind = node.Opt("bind") is { } b ? EndPoint(b) : null;
            InetEndPoint? peer = node.Opt("peer") is { } p ? EndPoint(p) : null;
            string state = node.Opt("state")?.Choice("listen", "bound", "connected", "unbound")
                ?? (peer != null ? "connected" : proto == SocketProtocol.Tcp && bind != null ? "listen" : bind != null ? "bound" : "unbound");
            var family = node.Opt("family")?.Choice("inet", "inet6") is { } f
                ? (f == "inet" ? SocketFamily.Inet : SocketFamily.Inet6)
                : bind?.Family ?? peer?.Family ?? SocketFamily.Inet;
            if (bind is { } bf && bf.Family != family && !(family == SocketFamily.Inet6 && bf.Family == SocketFamily.Inet))
                throw node.Req("bind").Error($"an {family} socket cannot bind {bf}");
            if (state == "unbound" && bind != null) throw node.Req("bind").Error("an unbound socket takes no 'bind'");
            if (state is "listen" or "bound" && bind == null) throw node.Error($"a '{state}' socket needs 'bind'");
            if (state == "connected" && peer == null) throw node.Error("a connected socket needs 'peer'");
            if (state != "connected" && peer != null) throw node.Req("peer").Error("only connected sockets take 'peer'");
            if (state == "listen" && proto != SocketProtocol.Tcp) throw node.Req("state").Error("only TCP sockets listen");

            var s = _env.Namespace.Sockets.Create(family, proto);
            s.Name = name;
            _env.Sockets[name] = s;
            try
            {
                if (node.Opt("reuseport") is { } rp)
                {
                    string? label = rp.Element.ValueKind == JsonValueKind.String ? rp.Str() : rp.Bool() ? "" : null;
                    if (label != null) s.ReusePort = true;
                    if (!string.IsNullOrEmpty(label)) labels.Add((label, rp, s));
                }
                if (node.Opt("v6only") is { } v6) s.V6Only = v6.Bool();
                if (node.Opt("mark") is { } mark) s.Mark = (uint)mark.Int(0, uint.MaxValue);
                if (node.Opt("priority") is { } prio) s.Priority = (uint)prio.Int(0, uint.MaxValue);
                if (node.Opt("device") is { } dev) s.BoundDevice = (int)dev.Int(0, int.MaxValue);
                if (bind is { } ep) s.Bind(ep);
                if (state == "listen") s.Listen();
                if (state == "connected") s.Connect(peer!.Value);
            }
            catch (SocketErrorException e)
            {
                throw node.Error(e.Message);
            }
        }
        foreach (var (label, node, s) in labels)
        {
            // A connected UDP socket joined the group at bind and left it at connect, as in Linux (udp_lib_hash4).
            if (s.ReuseportGroup is null && s.Protocol == SocketProtocol.Udp && s.State == SockState.Connected) continue;
            if (s.ReuseportGroup is not { } group) throw node.Error($"socket '{s.Name}' must be bound (a TCP socket: listening) to join reuseport group '{label}'");
            if (_groups.TryGetValue(label, out var have) && have != group)
                throw node.Error($"reuseport group '{label}' is bound to {have.Local}; a group shares one protocol and address");
            _groups[label] = group;
        }
    }

    readonly Dictionary<string, ReuseportGroup> _groups = new(StringComparer.Ordinal);

    Sock SocketNamed(JNode node)
    {
        string name = node.Str();
        return _env.Sockets.TryGetValue(name, out var s) ? s : throw node.Error($"unknown socket '{name}'");
    }

    // SO_ATTACH_REUSEPORT_CBPF's struct sock_filter array as [[code, jt, jf, k], ...], or the name of a file (relative to
    // the scenario) in the `tcpdump -ddd` text form (ClassicFilter.Parse); checked as the kernel checks it.
    ClassicFilter ClassicProgram(JNode node)
    {
        if (node.Element.ValueKind == System.Text.Json.JsonValueKind.String)
        {
            string path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(_file)) ?? ".", node.Str());
            try
            {
                return ClassicFilter.Parse(File.ReadAllText(path));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or SocketErrorException)
            {
                throw node.Error($"{node.Str()}: {e.Message}");
            }
        }
        var code = new List<SockFilter>();
        foreach (var insn in node.Items())
        {
            var f = insn.Items().ToArray();
            if (f.Length != 4) throw insn.Error("a classic instruction is [code, jt, jf, k]");
            code.Add(new SockFilter((ushort)f[0].Int(0, ushort.MaxValue), (byte)f[1].Int(0, byte.MaxValue), (byte)f[2].Int(0, byte.MaxValue),
                unchecked((uint)f[3].Int(int.MinValue, uint.MaxValue))));
        }
        try
        {
            return new ClassicFilter(code);
        }
        catch (SocketErrorException e)
        {
            throw node.Error(e.Message);
        }
    }

    void BuildGroups(JNode groups)
    {
        foreach (var (label, node) in groups.Fields())
        {
            node.Object("select", "drop", "program", "cbpf");
            if (!_groups.TryGetValue(label, out var group)) throw node.Error($"no socket joined reuseport group '{label}'");
            if (node.Opt("cbpf") is { } cbpf)
            {
                if (node.Opt("select") != null || node.Opt("drop") != null || node.Opt("program") != null)
                    throw cbpf.Error($"reuseport group '{label}': 'cbpf' replaces 'program' and the 'select'/'drop' stand-ins");
                group.AttachClassic(ClassicProgram(cbpf));
            }
            else if (node.Opt("program") is { } prog)
            {
                if (node.Opt("select") != null || node.Opt("drop") != null)
                    throw prog.Error($"reuseport group '{label}': 'program' replaces the 'select'/'drop' stand-ins");
                // SO_ATTACH_REUSEPORT_EBPF: verified, bound to the object's maps; the group holds the program from here.
                if (!_reuseportPrograms.TryGetValue(prog.Str(), out var spec))
                    throw prog.Error($"no SK_REUSEPORT program '{prog.Str()}' in the object");
                try
                {
                    group.Attach(_collection!.ReuseportProgram(spec.Name));
                }
                catch (CollectionLoadException e) { throw prog.Error(ProgramError(e)); }
                catch (BpfException e) { throw prog.Error($"program '{spec.Name}': {Summary(e.Message)}"); }
            }
            else if (node.Opt("select") is { } sel)
            {
                var chosen = SocketNamed(sel);
                if (chosen.ReuseportGroup != group) throw sel.Error($"socket '{sel.Str()}' is not in reuseport group '{label}'");
                group.Selector = (ReuseportGroup _, in Packet _) => ReuseportDecision.Choose(chosen);
            }
            else if (node.Opt("drop") is { } drop && drop.Bool())
            {
                group.Selector = (ReuseportGroup _, in Packet _) => ReuseportDecision.Drop;
            }
        }
    }
}
