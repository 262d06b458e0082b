@rem Gradle wrapper launcher for Windows. The wrapper JAR is not in the repository:
@rem Android Studio regenerates it, or run: gradle wrapper --gradle-version 8.11.1
@echo off
set APP_HOME=%~dp0
set WRAPPER_JAR=%APP_HOME%gradle\wrapper\gradle-wrapper.jar
if not exist "%WRAPPER_JAR%" (
  echo gradlew: %WRAPPER_JAR% is missing; run "gradle wrapper --gradle-version 8.11.1" 1>&2
  exit /b 1
)
set JAVACMD=java
if defined JAVA_HOME set JAVACMD=%JAVA_HOME%\bin\java
"%JAVACMD%" %JAVA_OPTS% %GRADLE_OPTS% "-Dorg.gradle.appname=gradlew" -classpath "%WRAPPER_JAR%" org.gradle.wrapper.GradleWrapperMain %*
