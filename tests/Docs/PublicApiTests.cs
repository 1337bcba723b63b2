using System.Reflection;
using System.Text;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Docs;

/// <summary>
/// The public API of each library package is listed in <c>api/PACKAGE.txt</c> (one line per public type and
/// member, sorted), and this test compares the built assemblies with those files, so that an API change is
/// a visible diff in review. After an intended change, regenerate the files with
/// <c>BPFJIT_UPDATE_API=1 dotnet test tests/BpfJit.Tests.csproj --filter FullyQualifiedName~PublicApiTests</c>
/// and commit them. The test also checks that no two packages export a type of the same name.
/// </summary>
public class PublicApiTests
{
    static readonly string[] s_packages = ["BpfJit.Frontend", "BpfJit.Runtime", "BpfJit.Verifier", "BpfJit.IlEmitter"];

    static Assembly Load(string name) => Assembly.Load(new AssemblyName(name));

    static string ApiFile(string package) => Path.Combine(Paths.RepoRoot, "api", package + ".txt");

    [TestCaseSource(nameof(s_packages))]
    public void TheListedApiIsTheBuiltApi(string package)
    {
        string actual = Listing(Load(package));
        string path = ApiFile(package);
        if (Environment.GetEnvironmentVariable("BPFJIT_UPDATE_API") == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, actual);
            return;
        }
        Assert.That(File.Exists(path), $"{path} is missing: run with BPFJIT_UPDATE_API=1 to write it");
        string listed = File.ReadAllText(path).ReplaceLineEndings("\n");
        if (listed == actual) return;
        var before = listed.Split('\n').ToHashSet(StringComparer.Ordinal);
        var after = actual.Split('\n').ToHashSet(StringComparer.Ordinal);
        var diff = after.Except(before).Select(l => "+ " + l).Concat(before.Except(after).Select(l => "- " + l)).Take(40);
        Assert.Fail($"the public API of {package} differs from api/{package}.txt (BPFJIT_UPDATE_API=1 rewrites it after an intended change):\n{string.Join("\n", diff)}");
    }

    [Test]
    public void PublicTypeNamesAreUniqueAcrossThePackages()
    {
        var owners = s_packages.SelectMany(p => Load(p).GetExportedTypes().Select(t => (Name: TypeName(t), Type: t)))
            .GroupBy(x => x.Name)
            .Where(g => g.Select(x => x.Type.Namespace).Distinct().Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(x => x.Type.FullName))}")
            .ToList();
        Assert.That(owners, Is.Empty, "one name, one type: these names are exported by more than one namespace");
    }

    /// <summary>The listing of an assembly: each exported type, then its public and protected members.</summary>
    public static string Listing(Assembly assembly)
    {
        var sb = new StringBuilder();
        foreach (var type in assembly.GetExportedTypes().OrderBy(t => t.FullName, StringComparer.Ordinal))
        {
            sb.Append(TypeLine(type)).Append('\n');
            var lines = new List<string>();
            const BindingFlags flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var m in type.GetMembers(flags))
            {
                if (!Visible(m) || m is Type) continue;
                if (m is MethodInfo { IsSpecialName: true } method && !method.Name.StartsWith("op_", StringComparison.Ordinal)) continue;
                if (type.IsEnum && m is FieldInfo { IsSpecialName: true }) continue;
                lines.Add("  " + MemberLine(type, m));
            }
            lines.Sort(StringComparer.Ordinal);
            foreach (string l in lines) sb.Append(l).Append('\n');
        }
        return sb.ToString();
    }

    static bool Visible(MemberInfo m) => m switch
    {
        MethodBase b => b.IsPublic || b.IsFamily || b.IsFamilyOrAssembly,
        FieldInfo f => f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly,
        PropertyInfo p => p.GetAccessors(true).Any(a => a.IsPublic || a.IsFamily || a.IsFamilyOrAssembly),
        EventInfo e => e.AddMethod is { } add && (add.IsPublic || add.IsFamily),
        _ => false,
    };

    static string TypeLine(Type t)
    {
        string kind = t.IsEnum ? "enum" : t.IsInterface ? "interface" : t.IsValueType ? "struct"
            : typeof(Delegate).IsAssignableFrom(t.BaseType) ? "delegate" : t.IsAbstract && t.IsSealed ? "static class"
            : t.IsAbstract ? "abstract class" : t.IsSealed ? "sealed class" : "class";
        var bases = new List<string>();
        if (t.BaseType is { } b && b != typeof(object) && b != typeof(ValueType) && b != typeof(Enum) && !typeof(Delegate).IsAssignableFrom(t.BaseType))
            bases.Add(TypeName(b));
        if (t.IsEnum) bases.Add(TypeName(Enum.GetUnderlyingType(t)));
        bases.AddRange(t.GetInterfaces().Where(i => i.IsPublic || i.IsNestedPublic).Select(TypeName).Order(StringComparer.Ordinal));
        return $"{kind} {t.Namespace}.{TypeName(t)}{(bases.Count > 0 ? " : " + string.Join(", ", bases) : "")}";
    }

    static string MemberLine(Type owner, MemberInfo m) => m switch
    {
        ConstructorInfo c => $"{Static(c)}ctor({Parameters(c)})",
        MethodInfo x => $"{Static(x)}{TypeName(x.ReturnType)} {x.Name}{Generic(x)}({Parameters(x)})",
        PropertyInfo p => $"{(p.GetAccessors(true)[0].IsStatic ? "static " : "")}{TypeName(p.PropertyType)} {p.Name}{Indexer(p)} {{ {Accessors(p)}}}",
        FieldInfo f when owner.IsEnum => $"{f.Name} = {Convert.ChangeType(f.GetRawConstantValue(), Enum.GetUnderlyingType(owner), System.Globalization.CultureInfo.InvariantCulture)}",
        FieldInfo f => $"{(f.IsLiteral ? "const " : f.IsStatic ? "static " : "")}{(f.IsInitOnly ? "readonly " : "")}{TypeName(f.FieldType)} {f.Name}",
        EventInfo e => $"event {TypeName(e.EventHandlerType!)} {e.Name}",
        _ => m.Name,
    };

    static string Static(MethodBase m) => m.IsStatic ? "static " : m.IsAbstract ? "abstract " : m.IsVirtual && !m.IsFinal && m.DeclaringType is { IsInterface: false } ? "virtual " : "";

    static string Generic(MethodInfo m) => m.IsGenericMethodDefinition ? $"<{string.Join(", ", m.GetGenericArguments().Select(a => a.Name))}>" : "";

    static string Indexer(PropertyInfo p) => p.GetIndexParameters() is { Length: > 0 } ps ? $"[{string.Join(", ", ps.Select(x => TypeName(x.ParameterType)))}]" : "";

    static string Accessors(PropertyInfo p)
    {
        var sb = new StringBuilder();
        if (p.GetMethod is { } g && (g.IsPublic || g.IsFamily)) sb.Append("get; ");
        if (p.SetMethod is { } s && (s.IsPublic || s.IsFamily))
            sb.Append(s.ReturnParameter.GetRequiredCustomModifiers().Any(x => x.Name == "IsExternalInit") ? "init; " : "set; ");
        return sb.ToString();
    }

    static string Parameters(MethodBase m) => string.Join(", ", m.GetParameters().Select(p =>
        $"{(p.IsOut ? "out " : p.ParameterType.IsByRef ? (p.IsIn ? "in " : "ref ") : "")}{TypeName(p.ParameterType)} {p.Name}{(p.HasDefaultValue ? " = " + (p.DefaultValue ?? "null") : "")}"));

    static string TypeName(Type t)
    {
        if (t.IsByRef) return TypeName(t.GetElementType()!);
        if (t.IsArray) return TypeName(t.GetElementType()!) + "[" + new string(',', t.GetArrayRank() - 1) + "]";
        if (t.IsPointer) return TypeName(t.GetElementType()!) + "*";
        if (t.IsGenericParameter) return t.Name;
        string name = t.Name;
        int tick = name.IndexOf('`');
        if (tick >= 0) name = name[..tick];
        if (t.IsNested && !t.IsGenericParameter) name = TypeName(t.DeclaringType!) + "." + name;
        if (t.IsGenericType)
        {
            // Nested types carry their parent's generic arguments too: show only their own.
            var args = t.GetGenericArguments().Skip(t.DeclaringType?.GetGenericArguments().Length ?? 0).ToArray();
            if (args.Length > 0) name += "<" + string.Join(", ", args.Select(TypeName)) + ">";
        }
        return name;
    }
}
