using System.Runtime.InteropServices;
using BpfJit.IlEmitter.Hosting;
using ICSharpCode.Decompiler;
using ICSharpCode.Decompiler.CSharp;
using ICSharpCode.Decompiler.Metadata;
using ICSharpCode.Decompiler.TypeSystem;

namespace BpfJit.IlEmitter.Dump;

/// <summary>Decompiles a saved program to C# with ICSharpCode.Decompiler.</summary>
internal static class CSharpDump
{
    /// <summary>The whole <c>BpfJit.Dump.BpfProgram</c> class of <paramref name="assembly"/> as C#.</summary>
    public static string Decompile(byte[] assembly)
    {
        using var file = new PEFile(PersistedAssemblyHost.AssemblyName + ".dll", new MemoryStream(assembly));
        string here = Path.GetDirectoryName(typeof(JitClosure).Assembly.Location) ?? AppContext.BaseDirectory;
        var resolver = new UniversalAssemblyResolver(Path.Combine(here, "BpfJit.IlEmitter.dll"), false, file.DetectTargetFrameworkId());
        resolver.AddSearchDirectory(here);
        resolver.AddSearchDirectory(RuntimeEnvironment.GetRuntimeDirectory());
        var decompiler = new CSharpDecompiler(file, resolver, new DecompilerSettings());
        return decompiler.DecompileTypeAsString(new FullTypeName(PersistedAssemblyHost.TypeName));
    }
}
